"""Delivery funnels end to end: statuses posted to the real endpoint are counted in the web
process, flushed to Redis in the background, and read back by tracker, phone and category."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests
from click.testing import CliRunner

from tests.conftest import APP_SECRET, app_env, drive
from tests.fates import PHONE, body, status
from tests.processes import clean_env, kill_family, spawn, terminate, wait_for_http
from webhook import create_app
from webhook.cli import main
from webhook.cli.redis_server import free_port
from webhook.signature import sign
from workers.outcomes import funnels

MARKETING = {"billable": True, "pricing_model": "PMP", "category": "marketing", "type": "regular"}


def _mixed() -> dict:
    """Ten statuses of one campaign, one of another and three without a tracker."""
    return body(
        status("w1", "sent", tracker="spring-sale", pricing=MARKETING),
        status("w2", "sent", tracker="spring-sale", pricing=MARKETING),
        status("w3", "sent", tracker="spring-sale", pricing=MARKETING),
        status("w1", "delivered", tracker="spring-sale", pricing=MARKETING),
        status("w2", "delivered", tracker="spring-sale", pricing=MARKETING),
        status("w1", "read", tracker="spring-sale", pricing=MARKETING),
        status("w4", "failed", tracker="spring-sale", code=131049),
        status("w5", "failed", tracker="spring-sale", code=131049),
        status("w6", "failed", tracker="spring-sale", code=131026),
        status("w7", "played", tracker="spring-sale"),
        status("o1", "deleted", tracker="order-9"),
        status("n1", "sent"),
        status("n2", "delivered"),
        status("n3", "warning"),
    )


def _wait_for(connection, by: str, key: str, field: str, count: int, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        rows = {row[by]: row for row in funnels.funnel(connection, by, 3600)}
        if rows.get(key, {}).get(field) == count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


class TestCounts:
    """A batch of mixed statuses is counted exactly, without the view touching Redis for it."""

    def test_by_tracker_phone_and_category(self, redis, post):
        assert post.signed(_mixed()).status_code == 200
        rows = _wait_for(redis, "tracker", "spring-sale", "failed", 3)
        sale = rows["spring-sale"]
        assert {name: sale[name] for name in funnels.STATUSES} == {
            "sent": 3, "delivered": 2, "read": 1, "played": 1, "deleted": 0, "failed": 3,
            "warning": 0}  # fmt: skip
        assert sale["codes"] == {"131049": 2, "131026": 1}
        assert sale["failure_rate"] == 0.5
        assert rows["order-9"]["deleted"] == 1
        assert rows["-"]["sent"] == 1 and rows["-"]["warning"] == 1
        phone = _wait_for(redis, "phone", PHONE, "sent", 4)[PHONE]
        assert (phone["sent"], phone["delivered"], phone["failed"]) == (4, 3, 3)
        categories = _wait_for(redis, "category", "marketing/regular/marketing", "sent", 3)
        assert categories["marketing/regular/marketing"]["read"] == 1

    def test_a_request_that_failed_to_store_is_not_counted(self, redis_url):
        """A 503 is sent again by Meta: counting it now would count it twice."""
        app = create_app(app_env("redis://127.0.0.1:1"))
        payload = json.dumps(body(status("x1", "failed", tracker="t", code=131049))).encode()
        headers = {"X-Hub-Signature-256": sign(payload, APP_SECRET)}
        reply = app.test_client().post("/webhook", data=payload, headers=headers)
        assert reply.status_code == 503
        assert app.extensions["wastatus"].funnel.pending() == 0

    def test_trackers_beyond_the_cap_count_as_other(self, redis, redis_url):
        app = create_app(app_env(redis_url, WASTATUS_FUNNEL_MAX_TRACKERS="2"))
        payload = body(*(status(f"c{i}", "sent", tracker=f"order-{i}") for i in range(5)))
        raw = json.dumps(payload).encode()
        headers = {"X-Hub-Signature-256": sign(raw, APP_SECRET)}
        assert app.test_client().post("/webhook", data=raw, headers=headers).status_code == 200
        rows = _wait_for(redis, "tracker", "(other)", "sent", 3)
        assert sorted(rows) == ["(other)", "order-0", "order-1"]

    def test_a_long_tracker_with_a_lone_surrogate_is_cut_and_cleaned(self, redis, post):
        raw = json.dumps(body(status("s1", "sent", tracker="\ud800" + "x" * 600)))
        assert post.signed(raw.encode()).status_code == 200
        deadline = time.monotonic() + 10
        while not (rows := funnels.funnel(redis, "tracker", 3600)) and time.monotonic() < deadline:
            time.sleep(0.05)
        (row,) = rows
        assert row["tracker"].startswith("\ufffdxxx") and "[cut:" in row["tracker"]


def _write(connection, at: float, tracker: str, sent: int = 1) -> None:
    """What a web process's flush writes for `sent` statuses of `tracker` at time `at`."""
    with connection.pipeline(transaction=False) as pipe:
        tally = {(int(at // 60), "sent", None, PHONE, tracker, None): sent}
        funnels.write(pipe, tally, 14 * 86400.0, 1000)
        pipe.execute()


class TestRetention:
    """Minute buckets are kept as long as hours, and any window is read exactly to the minute."""

    def test_minute_and_hour_buckets_live_the_retention(self, redis, post, client):
        assert post.signed(_mixed()).status_code == 200
        assert client.application.extensions["wastatus"].funnel.flush()
        keys = list(redis.scan_iter(match=funnels.PREFIX + "[mh]:*"))
        assert {key.split(b":")[2] for key in keys} == {b"m", b"h"}
        for key in keys:
            assert 14 * 86400 < redis.ttl(key) <= 14 * 86400 + 3600, key

    def test_a_14_day_window_counts_its_edges_by_the_minute(self, redis):
        """Hours inside the window, minutes at both ends: the minute before the window is
        left out though its hour is half inside."""
        now = 1_780_000_000 // 3600 * 3600 + 30 * 60 + 30  # half past an hour
        start = now - 14 * 86400
        _write(redis, start - 60, "edge")  # before the window, in its first hour
        _write(redis, start, "edge")
        _write(redis, start + 600, "edge")
        _write(redis, start + 7 * 86400, "edge", sent=10)  # a whole hour in the middle
        _write(redis, now - 1800, "edge")  # in the last, partial hour
        _write(redis, now, "edge")
        (row,) = funnels.funnel(redis, "tracker", 14 * 86400, now)
        assert row["sent"] == 14
        (row,) = funnels.funnel(redis, "tracker", 3 * 3600, now)
        assert row["sent"] == 2

    def test_the_command_reads_14_days(self, redis, monkeypatch, redis_url):
        now = time.time()
        _write(redis, now - 14 * 86400 + 300, "fortnight")
        _write(redis, now - 14 * 86400 - 300, "fortnight")  # outside the window
        _write(redis, now - 86400, "fortnight")
        monkeypatch.setenv("REDIS_URL", redis_url)
        result = CliRunner().invoke(main, ["funnel", "--since", "14d", "--json"])
        (row,) = json.loads(result.output)
        assert row["tracker"] == "fortnight" and row["sent"] == 2

    def test_fields_of_the_previous_format_are_read(self, redis):
        """Buckets written before the packed format count until they expire."""
        now = time.time()
        key = funnels.bucket_key("m", int(now // 60))
        redis.hset(key, mapping={"sent|tracker|old": 3, "failed:131049|tracker|old": 1,
                                 "failed|tracker|old": 1, "sent|phone|1": 3})  # fmt: skip
        _write(redis, now, "old")
        (row,) = funnels.funnel(redis, "tracker", 600, now)
        assert (row["sent"], row["failed"], row["codes"]) == (4, 1, {"131049": 1})


class TestRedelivery:
    """A webhook Meta delivers again (its earlier delivery was not acknowledged) is counted
    once where a round trip that happens anyway can tell, and twice only where documented."""

    def _twice(self, client, payload: dict) -> None:
        raw = json.dumps(payload).encode()
        headers = {"X-Hub-Signature-256": sign(raw, APP_SECRET)}
        for _ in range(2):
            assert client.post("/webhook", data=raw, headers=headers).status_code == 200
        assert client.application.extensions["wastatus"].funnel.flush()

    def test_a_body_with_a_failure_counts_once(self, redis, client):
        """The failure's dedup says the body was taken before: none of its statuses count."""
        self._twice(client, _mixed())
        (row,) = [
            row for row in funnels.funnel(redis, "tracker", 600) if row["tracker"] == "spring-sale"
        ]
        assert (row["sent"], row["delivered"], row["failed"]) == (3, 2, 3)

    def test_with_tracking_every_status_counts_once(self, redis, redis_url):
        app = create_app(app_env(redis_url, WASTATUS_TRACK_MESSAGES="72h"))
        delivered = body(status("d1", "delivered", tracker="t"), status("d2", "read", tracker="t"))
        self._twice(app.test_client(), delivered)
        self._twice(app.test_client(), _mixed())
        rows = {row["tracker"]: row for row in funnels.funnel(redis, "tracker", 600)}
        assert (rows["t"]["delivered"], rows["t"]["read"]) == (1, 1)
        assert (rows["spring-sale"]["sent"], rows["spring-sale"]["failed"]) == (3, 3)
        app.extensions["wastatus"].funnel.close()

    def test_without_tracking_a_body_without_failures_counts_twice(self, redis, client):
        """The documented limit (docs/operations.md, 6b): no round trip, so no dedup."""
        self._twice(client, body(status("d1", "delivered", tracker="t")))
        (row,) = funnels.funnel(redis, "tracker", 600)
        assert row["delivered"] == 2


class TestFailedRecipients:
    """The drain job keeps each tracker's failed recipients; the CSV masks them unless PII."""

    def test_csv_export(self, redis, post, monkeypatch, redis_url):
        payload = body(
            status("f1", "failed", tracker="spring-sale", code=131049, recipient="818012345678"),
            status("f2", "failed", tracker="spring-sale", code=131026, recipient="818087654321"),
            status("f3", "failed", tracker="other", code=131026),
        )
        assert post.signed(payload).status_code == 200
        drive(redis, lambda: len(funnels.failed_recipients(redis, "spring-sale")) == 2)
        monkeypatch.setenv("REDIS_URL", redis_url)
        result = CliRunner().invoke(main, ["funnel", "failed", "spring-sale"])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[0] == "received_at,message_id,recipient_id,phone_number_id,code,title"
        assert len(lines) == 3
        assert "********5678" in result.output and "818012345678" not in result.output
        monkeypatch.setenv("WASTATUS_LOG_PII", "1")
        whole = CliRunner().invoke(main, ["funnel", "failed", "spring-sale"])
        assert "818012345678" in whole.output and "818087654321" in whole.output


class TestCommand:
    """`wastatus funnel` prints the funnel at 80 columns, or JSON."""

    def test_table_and_json(self, redis, post, monkeypatch, redis_url):
        assert post.signed(_mixed()).status_code == 200
        _wait_for(redis, "tracker", "spring-sale", "failed", 3)
        monkeypatch.setenv("REDIS_URL", redis_url)
        table = CliRunner().invoke(main, ["funnel", "--since", "1h"])
        assert table.exit_code == 0, table.output
        assert all(len(line) <= 80 for line in table.output.splitlines())
        assert "spring-sale" in table.output and "131049×2" in table.output
        as_json = CliRunner().invoke(main, ["funnel", "--by", "phone", "--json"])
        (row,) = json.loads(as_json.output)
        assert row["phone"] == PHONE and row["sent"] == 4

    def test_bad_since_is_refused(self, redis, monkeypatch, redis_url):
        monkeypatch.setenv("REDIS_URL", redis_url)
        result = CliRunner().invoke(main, ["funnel", "--since", "lately"])
        assert result.exit_code == 2 and "not a duration" in result.output


class TestImport:
    """Importing the web package does not import prometheus_client: `python -m
    webhook.granian_server` sets PROMETHEUS_MULTIPROC_DIR after the package is imported."""

    def test_prometheus_client_comes_later(self):
        code = "import sys, webhook; assert 'prometheus_client' not in sys.modules"
        assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def _post(base: str, payload: dict) -> int:
    raw = json.dumps(payload).encode()
    headers = {"X-Hub-Signature-256": sign(raw, APP_SECRET), "Content-Type": "application/json"}
    return requests.post(f"{base}/webhook", data=raw, headers=headers, timeout=10).status_code


@pytest.mark.parametrize("server", ["granian", "gunicorn"])
class TestRestart:
    """`wastatus serve` flushes its tally when stopped: SIGTERM loses nothing, SIGKILL at most
    the flush interval."""

    def _serve(self, tmp_path, redis_url, server: str, flush: str):
        port = free_port()
        env = clean_env(tmp_path, REDIS_URL=redis_url, WASTATUS_APP_SECRET=APP_SECRET,
                        WASTATUS_SERVER=server, WASTATUS_FUNNEL_FLUSH=flush)  # fmt: skip
        log = tmp_path / "serve.log"
        process = spawn(["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
                        env, log)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base, process, log)
        return process, base

    def test_sigterm_loses_nothing(self, redis, redis_url, tmp_path, server):
        # A minute between flushes: only the flush on exit can store these counts.
        process, base = self._serve(tmp_path, redis_url, server, "60s")
        try:
            for i in range(40):
                assert _post(base, body(status(f"t{i}", "delivered", tracker="restart"))) == 200
        finally:
            terminate(process)
        assert process.returncode is not None
        rows = {row["tracker"]: row for row in funnels.funnel(redis, "tracker", 3600)}
        assert rows["restart"]["delivered"] == 40

    def test_sigkill_loses_at_most_the_flush_interval(self, redis, redis_url, tmp_path, server):
        process, base = self._serve(tmp_path, redis_url, server, "200ms")
        try:
            for i in range(40):
                assert _post(base, body(status(f"k{i}", "read", tracker="crash"))) == 200
            time.sleep(1.5)  # several flush intervals: everything posted is stored by now
            kill_family(process.pid)  # the server and its workers, as a crash would
            process.wait(10)
        finally:
            terminate(process)
        rows = {row["tracker"]: row for row in funnels.funnel(redis, "tracker", 3600)}
        assert rows["crash"]["read"] == 40
