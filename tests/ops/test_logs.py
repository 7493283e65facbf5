"""Structured logs: a JSON line per request and per job; phone numbers masked, secrets kept out."""

from __future__ import annotations

import json
import logging
import time

import pytest

from tests.conftest import APP_SECRET, ONPREM_TOKEN, app_env, work
from tests.ops.conftest import cloud_status
from workers import logs, queues
from workers.settings import read


def lines(captured: str, event: str) -> list[dict]:
    """The JSON log lines in `captured` whose event is `event`."""
    found = []
    for line in captured.splitlines():
        if line.startswith("{"):
            doc = json.loads(line)
            if doc.get("event") == event:
                found.append(doc)
    return found


@pytest.fixture
def reset_logging():
    yield
    logs.configure(read({}))


class TestMaskPhone:
    def test_keeps_only_the_last_four_digits(self):
        """A phone number shows its last 4 digits only."""
        assert logs.mask_phone("819012345678") == "********5678"

    def test_keeps_formatting_characters(self):
        """Plus signs, spaces and dashes stay, so the shape of the number is recognisable."""
        assert logs.mask_phone("+81 90-1234-5678") == "+** **-****-5678"

    def test_masks_short_values_whole(self):
        """Four digits or fewer are not shown at all."""
        assert logs.mask_phone("1234") == "****"
        assert logs.mask_phone(None) == ""


class TestScrub:
    def test_masks_phone_fields_at_any_depth(self):
        """recipient_id, display_phone_number and friends are masked inside lists and dicts."""
        clean = logs.scrub({"event": {"recipient_id": "16505551234",
                                      "display_phone_number": "15550783881"},
                            "items": [{"wa_id": "819012345678"}]})  # fmt: skip
        assert clean == {"event": {"recipient_id": "*******1234",
                                   "display_phone_number": "*******3881"},
                         "items": [{"wa_id": "********5678"}]}  # fmt: skip

    def test_redacts_secret_fields(self):
        """Any field named like a secret, token, password, signature or authorization is hidden."""
        clean = logs.scrub({"app_secret": "s", "headers": {"Authorization": "Bearer t"},
                            "onprem_token": "t", "x_hub_signature_256": "sha256=ab"})  # fmt: skip
        hidden = logs.REDACTED
        assert clean == {"app_secret": hidden, "headers": {"Authorization": hidden},
                         "onprem_token": hidden, "x_hub_signature_256": hidden}  # fmt: skip

    def test_pii_flag_keeps_phone_numbers(self):
        """With pii allowed, phone numbers stay whole; secrets are still redacted."""
        clean = logs.scrub({"recipient_id": "16505551234", "token": "t"}, pii=True)
        assert clean == {"recipient_id": "16505551234", "token": logs.REDACTED}


class TestJsonFormatter:
    def test_writes_one_json_object_per_line(self):
        """A record becomes one line of JSON with ts, level, logger, event and its fields."""
        record = logging.LogRecord("wastatus.test", logging.WARNING, __file__, 1, "thing.happened",
                                   None, None)  # fmt: skip
        record.fields = {"count": 3, "recipient_id": "16505551234"}
        line = logs.JsonFormatter().format(record)
        assert "\n" not in line
        doc = json.loads(line)
        assert doc["level"] == "warning" and doc["logger"] == "wastatus.test"
        assert doc["event"] == "thing.happened" and doc["count"] == 3
        assert doc["recipient_id"] == "*******1234"

    def test_keeps_the_traceback_of_an_exception(self):
        """An exception's traceback is kept in one JSON field, the line stays one line."""
        try:
            raise ValueError("boom")
        except ValueError:
            record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None,
                                       __import__("sys").exc_info())  # fmt: skip
        line = logs.JsonFormatter().format(record)
        assert "\n" not in line and "ValueError: boom" in json.loads(line)["exception"]

    def test_log_pii_setting_reaches_the_formatter(self, capsys, reset_logging):
        """WASTATUS_LOG_PII=1 keeps phone numbers in the lines written."""
        logs.configure(read({"WASTATUS_LOG_PII": "1"}))
        logs.log(logging.getLogger("wastatus.test"), "pii.check", recipient_id="16505551234")
        assert lines(capsys.readouterr().err, "pii.check")[0]["recipient_id"] == "16505551234"
        logs.configure(read({}))
        logs.log(logging.getLogger("wastatus.test"), "pii.check", recipient_id="16505551234")
        assert lines(capsys.readouterr().err, "pii.check")[0]["recipient_id"] == "*******1234"

    def test_log_level_warning_drops_request_lines(self, client, capsys, reset_logging):
        """WASTATUS_LOG_LEVEL=WARNING keeps the per-request lines out."""
        logs.configure(read({"WASTATUS_LOG_LEVEL": "WARNING"}))
        client.get("/healthz")
        assert lines(capsys.readouterr().err, "http.request") == []


class TestRequestLog:
    def test_one_line_per_request_with_outcome_events_and_latency(self, post, capsys):
        """A stored failure logs one line: status, outcome, counts, event id and latency."""
        capsys.readouterr()
        started = time.perf_counter()
        post.signed(cloud_status(code=131049, recipient="16505551234"))
        elapsed_ms = (time.perf_counter() - started) * 1000
        found = lines(capsys.readouterr().err, "http.request")
        assert len(found) == 1
        line = found[0]
        assert line["method"] == "POST" and line["path"] == "/webhook" and line["status"] == 200
        assert line["outcome"] == "accepted" and line["stored"] == 1 and line["statuses"] == 1
        assert len(line["event_ids"]) == 1 and len(line["event_ids"][0]) == 32
        assert 0 < line["latency_ms"] <= elapsed_ms  # the request's own time, within the post

    def test_never_logs_the_body_phone_numbers_or_secrets(self, redis, redis_url, capsys):
        """Neither the recipient's number, nor the body, nor the token or signature is written."""
        from tests.conftest import Poster
        from webhook import create_app

        client = create_app(app_env(redis_url, WASTATUS_LOG_REQUESTS="all")).test_client()
        post = Poster(client)
        capsys.readouterr()
        post.signed(cloud_status(code=131049, recipient="16505551234"))
        client.post(f"/webhook?token={ONPREM_TOKEN}", data=json.dumps(cloud_status()),
                    content_type="application/json")  # fmt: skip
        written = capsys.readouterr().err
        assert len(lines(written, "http.request")) == 2
        for secret in ("16505551234", "wamid.", ONPREM_TOKEN, APP_SECRET, "sha256="):
            assert secret not in written

    def test_unauthenticated_requests_leave_no_line_only_a_counter(self, client, scrape, capsys):
        """A 401 writes no log line (whoever floods the URL cannot fill the logs); it counts."""
        name, outcome = "wastatus_webhook_requests_total", "unauthorized"
        counted = scrape().value(name, outcome=outcome)
        capsys.readouterr()
        client.post("/webhook", data=b"{}", content_type="application/json")
        assert lines(capsys.readouterr().err, "http.request") == []
        assert scrape().value(name, outcome=outcome) == counted + 1

    def test_size_refusals_leave_no_line_only_a_counter(self, post, scrape, capsys):
        """A body over the limit is refused with 413 before authentication: like a 401, it
        is counted and writes no line, so a flood of big bodies cannot fill the logs."""
        name, outcome = "wastatus_webhook_requests_total", "too_large"
        counted = scrape().value(name, outcome=outcome)
        capsys.readouterr()
        reply = post.signed({"padding": "x" * (5 * 1024 * 1024)})
        assert reply.status_code == 413
        assert lines(capsys.readouterr().err, "http.request") == []
        assert scrape().value(name, outcome=outcome) == counted + 1

    def test_large_batches_log_a_bounded_list_of_ids(self, post, capsys):
        """A batch of many failures logs its count and at most MAX_EVENT_IDS ids."""
        from webhook.logs import MAX_EVENT_IDS

        body = cloud_status()
        template = body["entry"][0]["changes"][0]["value"]["statuses"][0]
        body["entry"][0]["changes"][0]["value"]["statuses"] = [
            {**template, "id": f"wamid.BATCH{i}"} for i in range(120)
        ]
        capsys.readouterr()
        post.signed(body)
        line = lines(capsys.readouterr().err, "http.request")[0]
        assert line["events"] == 120 and len(line["event_ids"]) == MAX_EVENT_IDS


class TestRequestModes:
    def test_failures_mode_is_the_default_and_skips_plain_200s(self, redis, redis_url, capsys):
        """Unset, WASTATUS_LOG_REQUESTS is failures: it logs failures, not routine statuses,
        nor the 401s and 413s refused before authentication (only their counters move)."""
        from tests.conftest import Poster
        from webhook import create_app

        app = create_app(app_env(redis_url))
        poster = Poster(app.test_client())
        capsys.readouterr()
        poster.signed(cloud_status("delivered"))
        poster.signed(cloud_status("failed"))
        app.test_client().post("/webhook", data=b"{}")
        app.test_client().get("/healthz")
        poster.signed({"padding": "x" * (5 * 1024 * 1024)})
        found = lines(capsys.readouterr().err, "http.request")
        assert [(line["status"], line.get("events")) for line in found] == [(200, 1)]

    def test_all_mode_logs_every_request(self, redis, redis_url, capsys):
        """WASTATUS_LOG_REQUESTS=all writes a line for a routine 200 too."""
        from tests.conftest import Poster
        from webhook import create_app

        app = create_app(app_env(redis_url, WASTATUS_LOG_REQUESTS="all"))
        capsys.readouterr()
        Poster(app.test_client()).signed(cloud_status("delivered"))
        app.test_client().get("/healthz")
        found = lines(capsys.readouterr().err, "http.request")
        assert [(line["path"], line["status"]) for line in found] == [
            ("/webhook", 200),
            ("/healthz", 200),
        ]

    def test_none_mode_logs_no_request(self, redis, redis_url, capsys):
        """WASTATUS_LOG_REQUESTS=none writes no request line at all."""
        from webhook import create_app

        client = create_app(app_env(redis_url, WASTATUS_LOG_REQUESTS="none")).test_client()
        capsys.readouterr()
        client.get("/healthz")
        assert lines(capsys.readouterr().err, "http.request") == []

    def test_unknown_mode_is_refused_at_start(self, redis_url):
        """A misspelt mode stops the app from starting instead of silently logging nothing."""
        from webhook import create_app

        with pytest.raises(ValueError, match="WASTATUS_LOG_REQUESTS"):
            create_app(app_env(redis_url, WASTATUS_LOG_REQUESTS="some"))


class TestJobLog:
    def test_one_line_per_job_with_id_function_duration_and_outcome(self, redis, post, capsys):
        """Each job a worker runs logs its id, function, queue, duration and outcome."""
        post.signed(cloud_status())
        capsys.readouterr()
        started = time.perf_counter()
        work(redis)
        elapsed_ms = (time.perf_counter() - started) * 1000
        found = lines(capsys.readouterr().err, "job.finished")
        drain = [line for line in found if line["function"] == "workers.drain.drain_inbox"]
        assert len(drain) == 1
        assert drain[0]["outcome"] == "succeeded" and drain[0]["queue"] == "wastatus-events"
        assert drain[0]["job_id"] and 0 < drain[0]["duration_ms"] <= elapsed_ms

    def test_a_failed_job_is_logged_as_failed(self, redis, capsys):
        """A job that raises logs outcome failed (and still lands in RQ's failed registry)."""
        queue = queues.get_queue(redis, queues.RETRY)
        job = queue.enqueue("json.loads", "not json")
        capsys.readouterr()
        work(redis)
        found = [line for line in lines(capsys.readouterr().err, "job.finished")
                 if line["job_id"] == job.id]  # fmt: skip
        assert found[0]["outcome"] == "failed" and found[0]["level"] == "warning"
        assert job.id in queue.failed_job_registry.get_job_ids()


class TestHotPathWrites:
    def test_a_line_goes_whole_to_the_file_descriptor(self, capfd):
        """Where stderr is a real descriptor, the hot path writes each line in one piece."""
        logs.configure(read({}))
        logger = logging.getLogger("wastatus.test")
        logs.log_fields(logger, "fd.line", {"title": "配信不可", "n": 1})
        found = lines(capfd.readouterr().err, "fd.line")
        assert [(line["title"], line["n"], line["level"]) for line in found] == [
            ("配信不可", 1, "info")
        ]

    def test_text_written_before_comes_out_first(self, capfd):
        """Text still buffered in the stream is flushed before the line's own write."""
        import sys

        logs.configure(read({}))
        sys.stderr.write("before:")
        logs.log_fields(logging.getLogger("wastatus.test"), "fd.order", {})
        assert capfd.readouterr().err.startswith('before:{"ts":')

    def test_a_stderr_nobody_reads_does_not_fail_the_caller(self, monkeypatch):
        """Logging must never fail a request: a broken pipe on stderr is swallowed."""
        import os
        import sys

        logs.configure(read({}))
        read_end, write_end = os.pipe()
        os.close(read_end)
        with open(write_end, "w") as orphan:
            monkeypatch.setattr(sys, "stderr", orphan)
            logs.log_fields(logging.getLogger("wastatus.test"), "fd.broken", {"n": 1})
            monkeypatch.undo()
