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
from rq import SimpleWorker, Worker
from rq.job import JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from tests.conftest import load_fixture
from tests.receiver import Reply
from workers import alerts, deadletter, intake, ledger, queues, retry, runner
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


def lost_resend(redis) -> str:
    """Drain one transient failure, then do what a worker did in the chaos run that lost one:
    pop its resend job and record the execution, then die before the work horse starts it
    (Redis restarted under it). Returns the job id."""
    event = failed_event(131043)
    intake.store(redis, [event])
    qs = [queues.get_queue(redis, queues.EVENTS)]
    SimpleWorker(qs, connection=redis, serializer=JSONSerializer).work(burst=True)
    every = [queues.get_queue(redis, name) for name in queues.ALL]
    doomed = Worker(every, connection=redis, serializer=JSONSerializer, name="doomed")
    job, queue = doomed.dequeue_job_and_maintain_ttl(timeout=None)
    assert queue.name == queues.RETRY and job.id == retry.job_id(event, 1)
    doomed.prepare_execution(job)  # the worker's side; its work horse never ran
    return job.id


class TestLostJob:
    def test_job_popped_by_a_dying_worker_is_resent_once(self, redis, resend_env):
        """A resend job popped by a worker that died before starting it is in no queue, and
        RQ's abandoned-job cleanup drops it (its status is still "queued"); `recover` finds it
        missing twice, a grace apart, and queues it again: resent once, the ledger balances."""
        job_id = lost_resend(redis)
        queue = queues.get_queue(redis, queues.RETRY)
        started = StartedJobRegistry(queue=queue)
        later = time.time() + 3600  # the execution's heartbeat has long lapsed
        started.cleanup(timestamp=later)
        # RQ alone: the job is nowhere, and nothing would ever run it
        assert queue.job_ids == [] and started.get_job_ids(cleanup=False) == []
        assert job_id not in FailedJobRegistry(queue=queue)
        assert queue.fetch_job(job_id).get_status() == JobStatus.QUEUED
        assert retry.recover(redis, now=later) == 0  # first seen missing: a suspect
        assert retry.recover(redis, now=later + retry.RECOVER_GRACE_SECONDS - 1) == 0
        assert retry.recover(redis, now=later + retry.RECOVER_GRACE_SECONDS) == 1
        assert queue.job_ids == [job_id]
        work(redis)
        [request] = resend_env.wait_for(1)
        event_id = request.json()["event_id"]
        assert ledger.outcomes_of(redis, [event_id]) == {event_id: "resent"}
        assert redis.zcard(retry.PENDING) == 0 and redis.hlen(retry.SUSPECTS) == 0
        assert retry.recover(redis, now=later + 3600) == 0
        started.cleanup(timestamp=later + 3600)
        work(redis)
        assert len(resend_env.requests) == 1

    def test_job_being_started_is_left_alone(self, redis, resend_env):
        """A job a live worker has just popped is missing from the queue for milliseconds:
        seen so once it is only a suspect, and a job back in the queue is cleared of suspicion."""
        job_id = lost_resend(redis)
        queue = queues.get_queue(redis, queues.RETRY)
        later = time.time() + 3600
        assert retry.recover(redis, now=later) == 0
        queue.enqueue_job(queue.fetch_job(job_id))  # it turned up again (say, RQ's own Retry)
        assert retry.recover(redis, now=later + 3600) == 0
        assert queue.job_ids == [job_id] and redis.hlen(retry.SUSPECTS) == 0

    def test_waiting_and_finished_jobs_are_not_requeued(self, redis, resend_env):
        """Queued, scheduled (the scheduler down) and finished resends are never queued again;
        a finished one leaves the pending list."""
        resend_env.script(Reply(500))
        intake.store(redis, [failed_event(131043, 1), failed_event(130429, 2)])
        work(redis)  # one resend failed and is rescheduled, one waits for the catalog's 60 s
        intake.store(redis, [failed_event(131043, 3)])
        qs = [queues.get_queue(redis, queues.EVENTS)]
        SimpleWorker(qs, connection=redis, serializer=JSONSerializer).work(burst=True)
        assert redis.zcard(retry.PENDING) == 3  # attempt 2, the delayed first, the queued one
        far = time.time() + 7 * 86400
        for step in range(3):
            assert retry.recover(redis, now=far + step * 3600) == 0
        assert len(scheduled(redis)) == 2 and len(queues.get_queue(redis, queues.RETRY)) == 1
        work(redis)
        assert redis.zcard(retry.PENDING) == 2 and redis.hlen(retry.SUSPECTS) == 0

    def test_worker_maintenance_recovers_a_lost_resend(self, redis, resend_env):
        """A worker's maintenance runs `retry.recover`, so a lost resend goes out with no new
        traffic."""
        job_id = lost_resend(redis)
        StartedJobRegistry(queue=queues.get_queue(redis, queues.RETRY)).cleanup(time.time() + 3600)
        long_ago = time.time() - 3600
        redis.zadd(retry.PENDING, {job_id: long_ago})  # due an hour ago
        redis.hset(retry.SUSPECTS, job_id, long_ago)  # and missing since
        runner.recover_stranded(redis)
        work(redis)
        assert len(resend_env.wait_for(1)) == 1


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
