"""The drain job on a real Redis with real RQ workers: batches, time box, crashes, SIGKILL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rq.registry import FailedJobRegistry

from tests.conftest import work
from tests.processes import kill_family
from workers import drain, queues
from workers.inbox import intake
from workers.outcomes import deadletters, ledger, stats

DROP_ALL = "routes:\n  - name: drop-all\n    action: drop\n"


def failed_events(count: int, code: int = 131047) -> list[dict]:
    events = []
    for n in range(count):
        event = {
            "kind": "status", "api": "cloud", "phone_number_id": "1111", "waba_id": "2222",
            "message_id": f"wamid.{n}", "recipient_id": f"8190{n:08d}", "status": "failed",
            "timestamp": 1700000000, "errors": [{"code": code, "title": "t"}],
            "received_at": time.time(),
        }  # fmt: skip
        event["event_id"] = intake.event_id(event)
        events.append(event)
    return events


def total_failures(redis) -> int:
    return sum(row["count"] for row in stats.failures_since(redis, 3600))


def leftovers(redis) -> list[bytes]:
    return sorted(redis.keys("wastatus:inbox*"))


@pytest.fixture
def drop_rules(tmp_path, monkeypatch, redis_url):
    path = tmp_path / "rules.yaml"
    path.write_text(DROP_ALL)
    monkeypatch.setenv("WASTATUS_RULES", str(path))
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.delenv("WASTATUS_RETRY_URL", raising=False)
    return path


class TestDrainInbox:
    def test_routes_every_event_in_batches(self, redis, drop_rules, monkeypatch):
        """1,200 events in batches of 500 are all routed once; nothing is left claimed."""
        monkeypatch.setenv("WASTATUS_DRAIN_BATCH", "500")
        events = failed_events(1200)
        intake.store(redis, events)
        work(redis)
        assert ledger.summary(redis)["outcomes"]["dropped"] == 1200
        assert total_failures(redis) == 1200
        assert leftovers(redis) == []

    def test_time_box_requeues_the_rest(self, redis, drop_rules, monkeypatch):
        """A job out of time stops after its batch and queues another drain for the rest."""
        monkeypatch.setenv("WASTATUS_DRAIN_BATCH", "100")
        monkeypatch.setenv("WASTATUS_DRAIN_SECONDS", "0")
        intake.store(redis, failed_events(350))
        redis.delete(intake.DRAIN_FLAG)
        queue = queues.get_queue(redis, queues.EVENTS)
        queue.empty()
        done = drain.drain_inbox()
        assert (done["events"], done["batches"], done["remaining"]) == (100, 1, 250)
        assert queue.count == 1
        work(redis)
        assert ledger.summary(redis)["outcomes"]["dropped"] == 350

    def test_alert_and_retry_routes_are_handed_on(self, redis, monkeypatch, redis_url):
        """With built-in rules, permanent codes reach an alert group and transient ones a resend."""
        monkeypatch.setenv("REDIS_URL", redis_url)
        monkeypatch.setenv("WASTATUS_RETRY_URL", "http://127.0.0.1:9/resend")
        monkeypatch.setenv("WASTATUS_GROUP_WAIT", "1h")
        monkeypatch.delenv("WASTATUS_RULES", raising=False)
        intake.store(redis, failed_events(30, 131047) + failed_events(20, 131049)[:20])
        work(redis)
        from workers.alerting import groups

        assert sum(group["pending"] for group in groups.open_groups(redis)) == 30
        from workers.resend import schedule

        assert redis.zcard(schedule.DUE) == 20  # due in 24 h, as the catalog says


class TestCrash:
    def test_crash_lands_in_failed_registry_and_poison_is_buried(
        self, redis, drop_rules, monkeypatch
    ):
        """A batch whose event crashes fails the job with its traceback; the others get through,
        and the poison event goes to the dead letters after max_deliveries."""
        monkeypatch.setenv("WASTATUS_DRAIN_MAX_DELIVERIES", "2")
        good = failed_events(10)
        poison = {**good[0], "event_id": "poison", "errors": [{"code": {"not": "hashable"}}]}
        intake.store(redis, [*good, poison])
        work(redis)
        failed = FailedJobRegistry(queue=queues.get_queue(redis, queues.EVENTS))
        jobs = [queues.get_queue(redis).fetch_job(job_id) for job_id in failed.get_job_ids()]
        assert len(jobs) == 2
        assert "TypeError" in jobs[0].latest_result().exc_string
        outcomes = ledger.summary(redis)["outcomes"]
        assert (outcomes["dropped"], outcomes["dead"]) == (10, 1)
        dead = deadletters.entries(redis, "event")
        assert [d.item["event"]["event_id"] for d in dead] == ["poison"]
        assert leftovers(redis) == []

    def test_failed_drain_can_be_requeued(self, redis, drop_rules):
        """A failed drain job requeued (as `rq requeue` does) runs again and drains the inbox."""
        drop_rules.write_text("routes: [")  # a broken rules file fails the job before claiming
        intake.store(redis, failed_events(5))
        work(redis)
        failed = FailedJobRegistry(queue=queues.get_queue(redis, queues.EVENTS))
        assert failed.count == 1 and redis.llen(intake.INBOX) == 5
        drop_rules.write_text(DROP_ALL)
        failed.requeue(failed.get_job_ids()[0])
        work(redis)
        assert ledger.summary(redis)["outcomes"]["dropped"] == 5


class TestWorkerKilled:
    @staticmethod
    def kill_mid_batch(redis, command: list[str], env: dict) -> tuple[int, int]:
        """Start a worker, SIGKILL it once a batch is claimed; (events claimed, routed)."""
        worker = subprocess.Popen(
            command, env=env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not any(redis.llen(key) for key in redis.keys(drain.PROCESSING_PREFIX + "*")):
                assert time.monotonic() < deadline and worker.poll() is None, "never mid-batch"
                time.sleep(0.002)
        finally:
            kill_family(worker.pid)  # the worker and its work horse, which has its own group
            worker.wait()
        claimed = sum(redis.llen(key) for key in redis.keys(drain.PROCESSING_PREFIX + "*"))
        return claimed, total_failures(redis)

    def test_sigkill_mid_job_loses_nothing_and_processes_once(self, redis, drop_rules, redis_url):
        """A `wastatus worker` SIGKILLed mid-batch: a new worker recovers the claimed events
        after the lease and every event is routed exactly once."""
        total = 12000
        intake.store(redis, failed_events(total))
        env = {**os.environ, "WASTATUS_DRAIN_BATCH": "5", "WASTATUS_DRAIN_LEASE": "1"}
        command = [str(Path(sys.executable).parent / "wastatus"), "worker", "--burst"]
        # The kill can land just after a batch finished and before the next is claimed; then
        # nothing is mid-batch and the worker is killed again, until one dies holding a batch.
        for _ in range(5):
            claimed, done_before = self.kill_mid_batch(redis, command, env)
            assert done_before + claimed + redis.llen(intake.INBOX) == total  # nothing lost
            if claimed:
                break
        assert claimed > 0 and done_before < total, "no worker was killed holding a batch"
        time.sleep(1.2)  # the lease expires
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=120)
        assert total_failures(redis) == total  # each event counted once
        summary = ledger.summary(redis)
        assert summary["outcomes"]["dropped"] == total and summary["conflicts"] == 0
        assert leftovers(redis) == []
        assert json.loads(json.dumps(summary))  # plain data for the harness
