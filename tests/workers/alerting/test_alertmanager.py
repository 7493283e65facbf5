"""The `alertmanager` receiver against real Alertmanagers (Debian's binary on loopback): the
alert arrives with its labels, a silence made there silences it, resolving in wastatus resolves
it there, an HA pair with one member down still gets it, and the refresh keeps it firing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.alertmanager import Alertmanager, Gate, binary
from tests.workers.alerting import drive, enriched, route
from workers.alerting import alertmanager, groups, notifications
from workers.outcomes import deadletters, ledger
from workers.queues import ALERTS, get_queue

ROOT = Path(__file__).resolve().parents[3]
FIXTURE_LABELS = {
    "alertname": "WhatsAppMessageFailed",
    "route": "default",
    "code": "131049",
    "api": "cloud",
    "category": "policy",
    "severity": "warning",
    "phone_number_id": "106540352242922",
}


@pytest.fixture
def make_alertmanager(tmp_path):
    """Start real Alertmanagers of the test's own; all stopped after it."""
    started: list[Alertmanager] = []

    def make() -> Alertmanager:
        server = Alertmanager(tmp_path / f"alertmanager-{len(started)}").start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def env(monkeypatch):
    """An alert environment with no other receiver and fast receiver retries."""
    for name in ("WASTATUS_ALERT_WEBHOOK_URL", "WASTATUS_ALERT_URLS", "WASTATUS_RULES",
                 "WASTATUS_LOG_PII", "WASTATUS_ALERTMANAGER_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WASTATUS_ALERT_RETRY_BASE", "0.1")
    monkeypatch.setenv("WASTATUS_ALERT_RETRY_MAX", "0.2")
    monkeypatch.setenv("WASTATUS_ALERT_ATTEMPTS", "2")
    monkeypatch.setenv("WASTATUS_HTTP_TIMEOUT", "2s")
    return monkeypatch


def worker_env(redis_url: str, tmp_path, urls: str, **more: str) -> dict[str, str]:
    """A `wastatus worker` that alerts to the Alertmanagers `urls` and nowhere else."""
    found = {**os.environ, "REDIS_URL": redis_url, "WASTATUS_DATA_DIR": str(tmp_path),
             "WASTATUS_ALERTMANAGER_URL": urls, "WASTATUS_GROUP_WAIT": "0",
             "WASTATUS_LOG_LEVEL": "WARNING", **more}  # fmt: skip
    for name in ("WASTATUS_RULES", "WASTATUS_RETRY_URL", "WASTATUS_ALERT_URLS",
                 "WASTATUS_ALERT_WEBHOOK_URL", "PROMETHEUS_MULTIPROC_DIR"):  # fmt: skip
        found.pop(name, None)
    return found


@contextmanager
def running_worker(env: dict[str, str]):
    """A `wastatus worker` process for the block, stopped as a process manager would."""
    command = [sys.executable, "-m", "webhook.cli", "worker"]
    worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        yield worker
    finally:
        worker.terminate()
        worker.wait(20)


def one(found: list[dict]) -> bool:
    return len(found) == 1


def seconds(text: str) -> float:
    return alertmanager._seconds(text)


class TestThroughAWorker:
    """A failed-status webhook, a `wastatus worker` process and a real Alertmanager."""

    def test_alert_arrives_with_its_labels_and_annotations(
        self, post, redis, redis_url, tmp_path, make_alertmanager
    ):
        """The webhook's 131049 becomes one active Alertmanager alert with the documented
        labels, the catalog's English words, startsAt its arrival and endsAt ahead."""
        server = make_alertmanager()
        before = time.time()
        assert post.fixture("cloud/failed_131049.json").status_code == 200
        env = worker_env(redis_url, tmp_path, server.url, WASTATUS_LANG="en")
        with running_worker(env):
            [found] = server.wait_for(one)
        assert found["labels"] == FIXTURE_LABELS
        assert found["status"]["state"] == "active"
        notes = found["annotations"]
        assert notes["description"].startswith("The message was withheld")
        assert notes["action"].startswith("Do not resend right away")
        assert notes["summary"].startswith("131049 Meta chose not to deliver: 1 events since")
        assert notes["count"] == "1"
        assert before - 1 <= seconds(found["startsAt"]) <= time.time()
        ends = seconds(found["endsAt"]) - time.time()
        assert alertmanager.LIFETIME_SECONDS - 60 < ends <= alertmanager.LIFETIME_SECONDS
        assert ledger.summary(redis)["outcomes"]["alerted"] == 1

    def test_a_silence_made_in_alertmanager_silences_it_there(
        self, post, redis_url, tmp_path, make_alertmanager
    ):
        """A silence posted to Alertmanager on code and phone_number_id suppresses the alert
        wastatus sent (Japanese words, the default language)."""
        server = make_alertmanager()
        assert post.fixture("cloud/failed_131049.json").status_code == 200
        with running_worker(worker_env(redis_url, tmp_path, server.url)):
            [found] = server.wait_for(one)
        assert "件" in found["annotations"]["summary"]
        silence = server.silence({"code": "131049", "phone_number_id": "106540352242922"})
        [found] = server.alerts()
        assert found["status"]["state"] == "suppressed"
        assert found["status"]["silencedBy"] == [silence]

    def test_resolving_in_wastatus_resolves_it_in_alertmanager(
        self, post, redis, redis_url, tmp_path, make_alertmanager
    ):
        """A group quiet for WASTATUS_GROUP_RESOLVE closes; the worker posts its alert as
        resolved, long before the endsAt of its firing post (5 minutes ahead)."""
        server = make_alertmanager()
        assert post.fixture("cloud/failed_131049.json").status_code == 200
        env = worker_env(redis_url, tmp_path, server.url, WASTATUS_GROUP_RESOLVE="4s")
        with running_worker(env):
            [firing] = server.wait_for(one)
            assert seconds(firing["endsAt"]) > time.time() + 200
            server.wait_for(lambda found: found == [], timeout=40)
        assert groups.open_groups(redis) == []
        assert not redis.hlen(alertmanager.RECORDS) and not redis.hlen(alertmanager.RESOLVED)

    def test_an_ha_pair_with_one_member_down_still_gets_it(
        self, post, redis, redis_url, tmp_path, make_alertmanager
    ):
        """Posted to both members of a pair whose first is stopped, the alert reaches the
        second and the notification counts as delivered."""
        down, up = make_alertmanager(), make_alertmanager()
        down.stop()
        assert post.fixture("cloud/failed_131049.json").status_code == 200
        env = worker_env(redis_url, tmp_path, f"{down.url},{up.url}")
        with running_worker(env):
            [found] = up.wait_for(one)
        assert found["labels"] == FIXTURE_LABELS
        assert ledger.summary(redis)["outcomes"]["alerted"] == 1
        assert deadletters.count(redis) == 0


def _submit(redis, events, the_route=None) -> str:
    the_route = the_route or route(group_wait=0)
    groups.submit(redis, events, the_route)
    return groups.group_id(groups.group_label(events[0], the_route))


def _refresh(redis) -> str:
    """Run the scheduled refresh job now, as its turn would."""
    job = redis.get(alertmanager.REFRESH_KEY)
    assert job, "no refresh job is scheduled"
    return alertmanager.refresh(job.decode(), connection=redis)


class TestKeepingItFiring:
    """While the group is open the refresh posts it again; a lost resolve is posted later."""

    def test_refresh_moves_ends_at_forward_and_schedules_the_next(
        self, redis, env, make_alertmanager
    ):
        """Each refresh posts the open group's alert with a later endsAt, and hands its turn
        to a new scheduled job."""
        server = make_alertmanager()
        env.setenv("WASTATUS_ALERTMANAGER_URL", server.url)
        _submit(redis, enriched(131049, 2))
        drive(redis, lambda: redis.hlen(alertmanager.RECORDS) == 1)
        [first] = server.wait_for(one)
        job = redis.get(alertmanager.REFRESH_KEY)
        time.sleep(0.1)
        assert _refresh(redis).startswith("refreshed: firing 1")
        [second] = server.alerts()
        assert seconds(second["endsAt"]) > seconds(first["endsAt"])
        assert second["startsAt"] == first["startsAt"]
        assert redis.get(alertmanager.REFRESH_KEY) not in (None, job)
        assert alertmanager.refresh(job.decode(), connection=redis) == "stale"

    def test_the_scheduled_refresh_job_runs_on_a_worker(self, redis, env, make_alertmanager):
        """The refresh is a scheduled RQ job on the alerts queue, due a minute after the
        post; run by a worker when due, it posts again and schedules its successor."""
        server = make_alertmanager()
        env.setenv("WASTATUS_ALERTMANAGER_URL", server.url)
        _submit(redis, enriched(131049, 1))
        drive(redis, lambda: redis.hlen(alertmanager.RECORDS) == 1)
        [first] = server.wait_for(one)
        job = redis.get(alertmanager.REFRESH_KEY).decode()
        scheduled = get_queue(redis, ALERTS).scheduled_job_registry
        due = scheduled.get_scheduled_time(job).timestamp()
        assert due == pytest.approx(time.time() + alertmanager.REFRESH_SECONDS, abs=5)
        redis.zadd(scheduled.key, {job: time.time()})  # a minute later
        drive(redis, lambda: redis.get(alertmanager.REFRESH_KEY).decode() != job)
        [second] = server.alerts()
        assert seconds(second["endsAt"]) > seconds(first["endsAt"])
        assert redis.get(alertmanager.REFRESH_KEY).decode() in scheduled.get_job_ids()

    def test_maintenance_replaces_a_lost_refresh_job(self, redis, env, make_alertmanager):
        """A refresh job lost with its worker (its name expired) is scheduled again by the
        recovery a worker's maintenance runs."""
        server = make_alertmanager()
        env.setenv("WASTATUS_ALERTMANAGER_URL", server.url)
        _submit(redis, enriched(131049, 1))
        drive(redis, lambda: redis.hlen(alertmanager.RECORDS) == 1)
        redis.delete(alertmanager.REFRESH_KEY, *redis.keys("rq:scheduled:*"))
        groups.recover(redis)
        job = redis.get(alertmanager.REFRESH_KEY).decode()
        assert job in get_queue(redis, ALERTS).scheduled_job_registry.get_job_ids()
        assert groups.recover(redis) == 0  # one is enough

    def test_a_restarted_empty_alertmanager_gets_it_back(self, redis, env, make_alertmanager):
        """An Alertmanager that restarted (alerts live in its memory) has the alert again
        after the next refresh."""
        server = make_alertmanager()
        env.setenv("WASTATUS_ALERTMANAGER_URL", server.url)
        _submit(redis, enriched(131049, 1))
        drive(redis, lambda: redis.hlen(alertmanager.RECORDS) == 1)
        server.wait_for(one)
        server.stop()
        server.start()
        assert server.alerts() == []
        _refresh(redis)
        [found] = server.alerts()
        assert found["labels"]["code"] == "131049"

    def test_a_close_alertmanager_missed_is_posted_by_the_refresh(
        self, redis, env, make_alertmanager
    ):
        """Alertmanager cut off when the group closes: the resolve fails, stays marked, and
        the next refresh once it is reachable again ends the alert there."""
        server = make_alertmanager()
        gate = Gate(server.port)
        env.setenv("WASTATUS_ALERTMANAGER_URL", gate.url)
        env.setenv("WASTATUS_GROUP_RESOLVE", "1s")
        try:
            _submit(redis, enriched(131049, 1), route(group_wait=0, repeat_interval=3600.0))
            drive(redis, lambda: redis.hlen(alertmanager.RECORDS) == 1)
            server.wait_for(one)
            gate.shut()
            drive(redis, lambda: groups.open_groups(redis) == [])
            assert redis.hlen(alertmanager.RESOLVED) == 1  # the close marked it
            assert len(server.alerts()) == 1  # still firing there
            gate.open()
            assert "resolved 1" in _refresh(redis)
        finally:
            gate.close()
        assert server.alerts() == []
        assert not redis.hlen(alertmanager.RECORDS) and not redis.hlen(alertmanager.RESOLVED)

    def test_a_notification_after_its_group_closed_is_not_kept_firing(
        self, redis, env, make_alertmanager
    ):
        """A notification that got through only after its group had closed (Alertmanager
        was cut off meanwhile) fires there, and is resolved by the refresh once its lease
        (repeat_interval and an hour) has passed: no group is left to notify again."""
        server = make_alertmanager()
        gate = Gate(server.port)
        env.setenv("WASTATUS_ALERTMANAGER_URL", gate.url)
        env.setenv("WASTATUS_GROUP_RESOLVE", "1s")
        env.setenv("WASTATUS_ALERT_ATTEMPTS", "100")
        try:
            gate.shut()
            _submit(redis, enriched(131049, 1), route(group_wait=0, repeat_interval=60.0))
            drive(redis, lambda: groups.open_groups(redis) == [])
            assert not redis.hlen(alertmanager.RESOLVED)  # nothing was tracked to mark
            gate.open()
            drive(redis, lambda: redis.hlen(alertmanager.RECORDS) == 1)
            assert len(server.alerts()) == 1
            [(gid, raw)] = redis.hgetall(alertmanager.RECORDS).items()
            record = json.loads(raw)
            lease = time.time() + 60 + alertmanager.LEASE_GRACE_SECONDS
            assert record["lease_until"] == pytest.approx(lease, abs=30)
            record["lease_until"] = time.time() - 1  # as if the lease had run out
            redis.hset(alertmanager.RECORDS, gid, json.dumps(record))
            assert "resolved 1" in _refresh(redis)
        finally:
            gate.close()
        assert server.alerts() == []
        assert not redis.hlen(alertmanager.RECORDS)


class TestDelivery:
    """Failures follow the notification path: retries with backoff, then a dead letter."""

    def test_no_alertmanager_accepting_ends_in_a_dead_letter(self, redis, env, make_alertmanager):
        """Both members down: each try fails, and after WASTATUS_ALERT_ATTEMPTS the
        notification is a dead letter, its events dead, nothing tracked."""
        first, second = make_alertmanager(), make_alertmanager()
        first.stop()
        second.stop()
        env.setenv("WASTATUS_ALERTMANAGER_URL", f"{first.url},{second.url}")
        events = enriched(131049, 2)
        _submit(redis, events)
        drive(redis, lambda: deadletters.count(redis) == 1)
        [dead] = deadletters.entries(redis, "alert")
        assert [error.split(":")[0] for error in dead.item["errors"]] == [
            "alertmanager try 1", "alertmanager try 2"]  # fmt: skip
        assert "alertmanager 1:" in dead.item["errors"][0]
        assert "alertmanager 2:" in dead.item["errors"][0]
        assert redis.zrange(notifications.OUTBOX, 0, -1) == []
        outcomes = ledger.outcomes_of(redis, [event["event_id"] for event in events])
        assert set(outcomes.values()) == {"dead"}
        assert not redis.hlen(alertmanager.RECORDS)


class TestDocumentedRouting:
    """The alertmanager.yml of docs/operations.md is valid and routes wastatus's labels."""

    def test_amtool_checks_and_routes_the_example(self, tmp_path):
        """`amtool check-config` accepts it; a critical failure goes to the pager, a policy
        one (the fixture's labels) to the marketing team."""
        text = (ROOT / "docs" / "operations.md").read_text()
        section = text.split("\n### 13e. Alertmanager as a receiver of wastatus alerts\n", 1)[1]
        config = section.split("```yaml\n", 1)[1].split("```", 1)[0]
        path = tmp_path / "alertmanager.yml"
        path.write_text(config)
        amtool = str(Path(binary()).parent / "amtool")
        checked = subprocess.run([amtool, "check-config", str(path)], capture_output=True,
                                 text=True, timeout=30)  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr

        def receiver_of(labels: dict[str, str]) -> str:
            pairs = [f"{name}={value}" for name, value in labels.items()]
            done = subprocess.run([amtool, "config", "routes", "test", f"--config.file={path}",
                                   *pairs], capture_output=True, text=True, timeout=30)  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout.strip()

        assert receiver_of(FIXTURE_LABELS) == "marketing-team"
        assert receiver_of({**FIXTURE_LABELS, "severity": "critical"}) == "whatsapp-pager"
