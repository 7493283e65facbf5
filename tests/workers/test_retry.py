"""The retry queue: backoff schedule, signed resend requests, Retry-After, exhaustion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rq import SimpleWorker
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from tests.conftest import load_fixture
from tests.receiver import Reply
from workers import alerts, deadletter, intake, ledger, queues
from workers.retry import backoff_delay, next_delay
from workers.rules import RetrySchedule
from workers.signing import generate_secret, verify_standard_webhook

SECRET = generate_secret()

schedules = st.builds(
    RetrySchedule,
    attempts=st.integers(1, 50),
    base_delay=st.floats(0, 3600),
    max_delay=st.floats(0, 86400),
    jitter=st.sampled_from(["full", "equal", "none"]),
)


class TestBackoff:
    @given(schedules, st.integers(2, 60), st.floats(0, 1, exclude_max=True))
    def test_jitter_bounds(self, schedule, attempt, rand):
        """The delay lies within the jitter's range under the capped exponential ceiling."""
        ceiling = min(schedule.max_delay, schedule.base_delay * 2.0 ** (attempt - 2))
        delay = backoff_delay(attempt, schedule, rand)
        low = {"full": 0.0, "equal": ceiling / 2, "none": ceiling}[schedule.jitter]
        assert low - 1e-9 <= delay <= ceiling + 1e-9

    @given(st.integers(2, 30), st.floats(0, 1, exclude_max=True))
    def test_grows_exponentially_until_the_cap(self, attempt, rand):
        """Without jitter each attempt waits twice the one before, up to max_delay."""
        schedule = RetrySchedule(base_delay=1, max_delay=1000, jitter="none")
        assert backoff_delay(attempt, schedule, rand) == min(1000, 2.0 ** (attempt - 2))

    @given(
        schedules,
        st.integers(2, 60),
        st.floats(0, 1, exclude_max=True),
        st.none() | st.floats(0, 86400),
        st.floats(0, 86400),
    )
    def test_never_sooner_than_retry_after_or_floor(self, schedule, attempt, rand, after, floor):
        """The next delay honours Retry-After and the catalog's minimum, whatever the jitter."""
        delay = next_delay(attempt, schedule, rand, after, floor)
        assert delay >= (after or 0) and delay >= floor
        assert delay >= backoff_delay(attempt, schedule, rand)


def failed_event(code: int, n: int = 0, callback: str | None = "campaign-7") -> dict:
    event = {
        "kind": "status", "api": "cloud", "waba_id": "2222", "phone_number_id": "1111",
        "display_phone_number": "81300000000", "message_id": f"wamid.{code}.{n}",
        "recipient_id": f"8190000{n:04d}", "recipient_participant_id": None, "status": "failed",
        "timestamp": 1700000000, "errors": [{"code": code, "title": "t", "message": "m",
        "details": "d", "href": None}], "biz_opaque_callback_data": callback,
        "conversation": None, "pricing": None, "received_at": time.time(),
    }  # fmt: skip
    event["event_id"] = intake.event_id(event)
    return event


def work(redis) -> None:
    qs = [queues.get_queue(redis, name) for name in queues.ALL]
    SimpleWorker(qs, connection=redis, serializer=JSONSerializer).work(burst=True)


def scheduled(redis) -> dict[str, float]:
    """Resend jobs waiting in the scheduler: job id → seconds from now until due."""
    registry = ScheduledJobRegistry(queue=queues.get_queue(redis, queues.RETRY))
    now = time.time()
    return {
        job_id: registry.get_scheduled_time(job_id).timestamp() - now
        for job_id in registry.get_job_ids()
    }


def release(redis) -> int:
    """Make every scheduled resend due now (instead of waiting for it)."""
    queue = queues.get_queue(redis, queues.RETRY)
    registry = ScheduledJobRegistry(queue=queue)
    job_ids = registry.get_job_ids()
    for job_id in job_ids:
        job = queue.fetch_job(job_id)
        registry.remove(job)
        queue.enqueue_job(job)
    return len(job_ids)


@pytest.fixture
def resend_env(monkeypatch, receiver, redis_url):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("WASTATUS_RETRY_URL", receiver.url + "/resend")
    monkeypatch.setenv("WASTATUS_RETRY_SECRET", SECRET)
    monkeypatch.setenv("WASTATUS_RETRY_BASE_DELAY", "0.2")
    monkeypatch.setenv("WASTATUS_RETRY_MAX_DELAY", "1")
    monkeypatch.setenv("WASTATUS_RETRY_ATTEMPTS", "3")
    monkeypatch.setenv("WASTATUS_GROUP_WAIT", "1h")  # keep alerts pending: only count them
    monkeypatch.delenv("WASTATUS_RULES", raising=False)
    return receiver


class TestResend:
    def test_immediate_code_is_resent_at_once_signed(self, redis, resend_env):
        """A code the catalog says to resend at once is POSTed in the same worker run, signed."""
        event = failed_event(131043)
        intake.store(redis, [event])
        work(redis)
        request = resend_env.wait_for(1)[0]
        verify_standard_webhook(SECRET, request.headers, request.body)
        body = request.json()
        assert body["attempt"] == 1 and body["message_id"] == event["message_id"]
        assert body["recipient_id"] == event["recipient_id"]
        assert body["biz_opaque_callback_data"] == "campaign-7"
        assert body["error"]["code"] == 131043 and body["catalog"]["explanation"]["ja"]
        assert request.headers["webhook-id"] == f"msg_{event['event_id']}"
        assert ledger.outcomes_of(redis, [event["event_id"]]) == {event["event_id"]: "resent"}

    def test_catalog_minimum_delays_the_first_resend(self, redis, resend_env):
        """131049 is not resent before 24 hours; 130429 waits the catalog's 60 s."""
        slow, short = failed_event(131049), failed_event(130429)
        intake.store(redis, [slow, short])
        work(redis)
        assert resend_env.requests == []
        due = scheduled(redis)
        assert due[f"wastatus-resend-{slow['event_id']}-1"] >= 86400 - 5
        assert 55 <= due[f"wastatus-resend-{short['event_id']}-1"] <= 60

    def test_transient_failures_are_resent_within_seconds(self, redis, resend_env):
        """131000, 131016 and the On-Premises 1014 go out at once, not after a delay."""
        events = [failed_event(131000), failed_event(131016), failed_event(1014)]
        events[2]["api"] = "on_premises"
        events[2]["event_id"] = intake.event_id(events[2])
        intake.store(redis, events)
        work(redis)
        codes = sorted(request.json()["error"]["code"] for request in resend_env.wait_for(3))
        assert codes == [1014, 131000, 131016]
        assert scheduled(redis) == {}

    def test_failure_is_rescheduled_with_backoff_then_succeeds(self, redis, resend_env):
        """A 500 reschedules the next attempt within the backoff bounds; a 200 then ends it."""
        event = failed_event(131043)
        resend_env.script(Reply(500))
        intake.store(redis, [event])
        started = time.time()
        work(redis)
        due = scheduled(redis)
        assert list(due) == [f"wastatus-resend-{event['event_id']}-2"]
        # Due at most 0.2 s after it was scheduled, between `started` and now; RQ keeps
        # scheduled times in whole seconds, hence the second of slack below.
        assert started - time.time() - 1.0 <= next(iter(due.values())) <= 0.2
        assert release(redis) == 1
        work(redis)
        second = resend_env.wait_for(2)[1]
        assert second.json()["attempt"] == 2 and second.headers["wastatus-attempt"] == "2"
        assert second.headers["webhook-id"] == resend_env.requests[0].headers["webhook-id"]
        assert ledger.summary(redis)["outcomes"]["resent"] == 1

    def test_429_retry_after_is_honoured(self, redis, resend_env):
        """A 429 with Retry-After: 120 is not retried sooner, though the backoff says 0.2 s."""
        resend_env.script(Reply(429, {"Retry-After": "120"}))
        intake.store(redis, [failed_event(131043)])
        work(redis)
        assert 115 <= min(scheduled(redis).values()) <= 120

    def test_exhaustion_alerts_and_dead_letters(self, redis, resend_env):
        """When every attempt fails the event is alerted as retry exhausted and dead-lettered."""
        resend_env.default = Reply(503)
        event = failed_event(131043)
        intake.store(redis, [event])
        work(redis)
        while release(redis):
            work(redis)
        assert len(resend_env.requests) == 3
        dead = deadletter.entries(redis, "retry")
        assert len(dead) == 1 and dead[0].item["event"]["event_id"] == event["event_id"]
        assert dead[0].item["attempts"] == 3 and "catalog" not in dead[0].item["event"]
        groups = alerts.open_groups(redis)
        assert len(groups) == 1 and groups[0]["retry_exhausted"] and groups[0]["pending"] == 1
        assert ledger.outcomes_of(redis, [event["event_id"]])[event["event_id"]] != "resent"

    def test_no_resend_url_alerts(self, redis, resend_env, monkeypatch):
        """Without WASTATUS_RETRY_URL a transient failure is alerted, never posted."""
        monkeypatch.delenv("WASTATUS_RETRY_URL")
        intake.store(redis, [failed_event(131043)])
        work(redis)
        assert resend_env.requests == [] and scheduled(redis) == {}
        assert len(alerts.open_groups(redis)) == 1

    def test_body_is_json_of_the_enriched_event(self, redis, resend_env):
        """The request body is UTF-8 JSON holding the catalog's Japanese text."""
        intake.store(redis, [failed_event(131043)])
        work(redis)
        body = resend_env.wait_for(1)[0].body
        assert json.loads(body.decode("utf-8"))["catalog"]["action"]["ja"]


class TestEndToEnd:
    def test_webhook_to_resend_through_a_worker_process(self, redis, post, resend_env, redis_url):
        """A signed Cloud webhook with a transient failure reaches the resend endpoint through a
        `wastatus worker --burst` subprocess, with the message id and callback data."""
        payload = json.loads(load_fixture("cloud/failed_131049.json"))
        status = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
        status["errors"][0]["code"] = 131043
        status["biz_opaque_callback_data"] = "order-42"
        assert post.signed(payload).status_code == 200
        command = [str(Path(sys.executable).parent / "wastatus"), "worker", "--burst"]
        subprocess.run(command, env=dict(os.environ), check=True, capture_output=True, timeout=60)
        body = resend_env.wait_for(1)[0].json()
        assert (body["message_id"], body["biz_opaque_callback_data"]) == (status["id"], "order-42")
        assert body["recipient_id"] == "16505551234" and body["code"] == 131043
