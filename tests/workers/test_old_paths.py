"""RQ jobs queued before the move to sub-packages still run: each names its old dotted path.

Every job function wastatus ever enqueued by name is queued here under its old path, on a real
Redis, and run by a real RQ worker pass; each test asserts the job did its work.
"""

from __future__ import annotations

import time

import pytest

from bench._receiver import Reply
from tests.workers.alerting import enriched, route, work
from workers import queues
from workers.alerting import groups, notifications
from workers.inbox import intake
from workers.inbox.enrich import enrich
from workers.outcomes import ledger
from workers.resend import schedule
from workers.routing.rules import RetrySchedule, Route
from workers.signing import generate_secret

OLD_PATHS = {
    "flush": "workers.alerts.flush_group",
    "deliver": "workers.notifications.deliver",
    "resend": "workers.retry.resend",
    "send": "workers.resender.send_due",
    "drain": "workers.drain.drain_inbox",
}


@pytest.fixture
def env(receiver, monkeypatch, redis_url, tmp_path):
    """The loopback receiver takes alerts (webhook receiver) and resends."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("WASTATUS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WASTATUS_ALERT_WEBHOOK_URL", receiver.url + "/alerts")
    monkeypatch.setenv("WASTATUS_ALERT_WEBHOOK_SECRET", generate_secret())
    monkeypatch.setenv("WASTATUS_RETRY_URL", receiver.url + "/resend")
    monkeypatch.setenv("WASTATUS_RETRY_SECRET", generate_secret())
    monkeypatch.setenv("WASTATUS_ALERT_RETRY_BASE", "30")  # a failed try waits: we replace it
    for name in ("WASTATUS_RULES", "WASTATUS_ALERT_URLS", "WASTATUS_RETRY_RATE"):
        monkeypatch.delenv(name, raising=False)
    return receiver


def failed_event(code: int, n: int = 0) -> dict:
    event = {
        "kind": "status", "api": "cloud", "waba_id": "2222", "phone_number_id": "1111",
        "display_phone_number": "81300000000", "message_id": f"wamid.old.{code}.{n}",
        "recipient_id": f"8190000{n:04d}", "recipient_participant_id": None, "status": "failed",
        "timestamp": 1700000000, "errors": [{"code": code, "title": "t", "message": "m"}],
        "received_at": time.time(),
    }  # fmt: skip
    return {**event, "event_id": intake.event_id(event)}


def requests_to(receiver, path: str) -> list:
    return [request for request in receiver.requests if request.path == path]


def replace_job(redis, queue_name: str, job_id: str, function: str, *args) -> None:
    """Cancel job `job_id` (queued or scheduled by the new code) and queue it again under
    `function`, as the previous release would have queued it."""
    queue = queues.get_queue(redis, queue_name)
    queue.scheduled_job_registry.remove(job_id, delete_job=True)
    queue.remove(job_id)
    redis.delete(f"rq:job:{job_id}")
    queue.enqueue(function, *args, job_id=job_id, result_ttl=0)


class TestOldPaths:
    """Each old dotted path imports and runs the job now kept in its sub-package."""

    def test_every_old_path_names_a_job_function(self):
        """Each old path resolves to the very function of the new module (a shim, no copy)."""
        from rq.utils import import_attribute

        from workers import drain
        from workers.resend import sender

        new = {
            "flush": groups.flush_group,
            "deliver": notifications.deliver,
            "resend": schedule.resend,
            "send": sender.send_due,
            "drain": drain.drain_inbox,
        }
        for name, path in OLD_PATHS.items():
            assert import_attribute(path) is new[name], path

    def test_old_flush_job_sends_the_group(self, redis, env):
        """A flush queued as `workers.alerts.flush_group` turns the group into a notification
        and delivers it."""
        events = enriched(131049, 3)
        groups.submit(redis, events, route(group_wait=3600.0))
        gid = redis.zrange(groups.GROUPS, 0, 0)[0].decode()
        job_id = redis.hget(groups.group_hash(gid), "job").decode()
        redis.hset(groups.group_hash(gid), "due", f"{time.time() - 1:.3f}")
        replace_job(redis, queues.ALERTS, job_id, OLD_PATHS["flush"], gid)
        work(redis)
        [alert] = requests_to(env, "/alerts")
        assert alert.json()["count"] == 3
        outcomes = ledger.outcomes_of(redis, [event["event_id"] for event in events])
        assert set(outcomes.values()) == {"alerted"}

    def test_old_delivery_job_delivers_the_notification(self, redis, env):
        """A delivery queued as `workers.notifications.deliver` sends its notification."""
        env.script(Reply(500))
        events = enriched(131049, 2)
        groups.submit(redis, events, route(group_wait=0.0))
        work(redis)  # the flush's own first try fails; the second waits 30 s
        assert len(requests_to(env, "/alerts")) == 1
        [nid] = [raw.decode() for raw in redis.zrange(notifications.OUTBOX, 0, -1)]
        job_id = notifications.get(redis, nid)["job"]
        replace_job(redis, queues.ALERTS, job_id, OLD_PATHS["deliver"], nid)
        work(redis)
        assert len(requests_to(env, "/alerts")) == 2
        assert notifications.get(redis, nid)["state"] == "delivered"

    def test_old_resend_job_resends(self, redis, env):
        """A resend queued as `workers.retry.resend` (one job per resend) is sent."""
        event = enrich(failed_event(131043))
        chosen = Route("retry-transient", "retry", retry=RetrySchedule(attempts=3))
        queue = queues.get_queue(redis, queues.RETRY)
        queue.enqueue(OLD_PATHS["resend"], event, chosen.to_dict(), 1, result_ttl=0)
        work(redis)
        [request] = env.wait_for(1)
        assert request.path == "/resend"
        assert ledger.outcomes_of(redis, [event["event_id"]])[event["event_id"]] == "resent"

    def test_old_sender_job_sends_due_resends(self, redis, env):
        """A sender queued as `workers.resender.send_due` sends the resends that are due."""
        event = enrich(failed_event(131043, 1))
        chosen = Route("retry-transient", "retry", retry=RetrySchedule(attempts=3))
        with redis.pipeline() as pipe:
            schedule.schedule_first(pipe, [(event, chosen, True)], time.time())
            pipe.execute()
        queues.get_queue(redis, queues.RETRY).enqueue(OLD_PATHS["send"], result_ttl=0)
        work(redis)
        [request] = env.wait_for(1)
        assert request.path == "/resend"
        assert ledger.outcomes_of(redis, [event["event_id"]])[event["event_id"]] == "resent"

    def test_drain_job_keeps_its_path(self, redis, env):
        """The drain job did not move: `workers.drain.drain_inbox` drains the inbox."""
        events = [failed_event(131049, n) for n in range(3)]
        intake.store(redis, events)
        queue = queues.get_queue(redis, queues.EVENTS)
        queue.empty()  # the drain job the intake queued: only ours runs
        queue.enqueue(OLD_PATHS["drain"], result_ttl=0)
        work(redis)
        assert redis.llen(intake.INBOX) == 0
        grouped = sum(group["count"] for group in groups.open_groups(redis))
        assert grouped + schedule.waiting(redis)["scheduled"] == 3  # each routed once
