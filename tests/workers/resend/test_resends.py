"""The retry queue: backoff schedule, signed resend requests, Retry-After, exhaustion."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench._receiver import Receiver, Reply
from tests.conftest import load_fixture, work
from workers import queues, runner
from workers.alerting import groups as alerts
from workers.inbox import intake
from workers.inbox.enrich import enrich
from workers.outcomes import deadletters, ledger
from workers.resend import schedule as retry
from workers.resend import sender
from workers.resend.schedule import backoff_delay, next_delay
from workers.routing.rules import RetrySchedule, Route
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


def due_in(redis) -> dict[str, float]:
    """Resends waiting: resend id (event id) → seconds from now until due."""
    now = time.time()
    return {raw.decode(): due - now for raw, due in redis.zrange(retry.DUE, 0, -1, withscores=True)}


def make_due(redis) -> int:
    """Make every waiting resend due now and lift any hold (instead of waiting for them)."""
    ids = redis.zrange(retry.DUE, 0, -1)
    redis.delete(retry.HOLD)
    if ids:
        redis.zadd(retry.DUE, dict.fromkeys(ids, time.time() - 1))
        retry.request_send(redis)
    return len(ids)


def tmp_rules(monkeypatch, jitter: str) -> str:
    """A rules file whose transient failures are resent with `jitter`; returns its path."""
    import tempfile

    folder = tempfile.mkdtemp(prefix="wastatus-rules-")
    path = Path(folder) / "rules.yaml"
    path.write_text(
        "routes:\n  - name: resend\n    matchers: {retry: [immediate, after_delay]}\n"
        f"    action: retry\n    retry: {{jitter: {jitter}}}\n"
    )
    monkeypatch.setenv("WASTATUS_RULES", str(path))
    return str(path)


def resend_keys(redis) -> set[str]:
    """Every key the resend path holds (RQ job hashes included)."""
    found = {key.decode() for key in redis.scan_iter(match="wastatus:retry:*")}
    return found | {key.decode() for key in redis.scan_iter(match="rq:job:*")}


@pytest.fixture
def resend_env(monkeypatch, receiver, redis_url, tmp_path):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("WASTATUS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WASTATUS_RETRY_URL", receiver.url + "/resend")
    monkeypatch.setenv("WASTATUS_RETRY_SECRET", SECRET)
    monkeypatch.setenv("WASTATUS_RETRY_BASE_DELAY", "0.2")
    monkeypatch.setenv("WASTATUS_RETRY_MAX_DELAY", "1")
    monkeypatch.setenv("WASTATUS_RETRY_ATTEMPTS", "3")
    monkeypatch.setenv("WASTATUS_GROUP_WAIT", "1h")  # keep alerts pending: only count them
    for name in ("WASTATUS_RULES", "WASTATUS_RETRY_RATE", "WASTATUS_ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    return receiver


class TestResend:
    """Resends go out signed, as before, from items kept in Redis instead of one job each."""

    def test_immediate_code_is_resent_at_once_signed(self, redis, resend_env):
        """A code the catalog says to resend at once is POSTed in the same worker run, signed,
        with the enriched event as the body."""
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
        assert request.headers["wastatus-attempt"] == "1"
        assert ledger.outcomes_of(redis, [event["event_id"]]) == {event["event_id"]: "resent"}

    def test_body_is_what_the_one_job_path_sent(self, redis, resend_env):
        """The body's bytes are those of earlier versions: the enriched event, then `attempt`
        and `error`, compact UTF-8 JSON."""
        event = failed_event(131043)
        intake.store(redis, [event])
        work(redis)
        enriched = enrich(event)
        before = {**enriched, "attempt": 1, "error": enriched["errors"][0]}
        expected = json.dumps(before, ensure_ascii=False, separators=(",", ":")).encode()
        assert resend_env.wait_for(1)[0].body == expected

    def test_headers_are_those_of_the_one_job_path(self, redis, resend_env):
        """The request carries the headers earlier versions sent, less `Connection:
        keep-alive` (HTTP/1.1 keeps connections alive without it)."""
        intake.store(redis, [failed_event(131043)])
        work(redis)
        headers = {name.lower(): value for name, value in resend_env.wait_for(1)[0].headers.items()}
        assert set(headers) == {
            "host", "content-type", "user-agent", "accept", "accept-encoding", "content-length",
            "webhook-id", "webhook-timestamp", "webhook-signature", "wastatus-attempt",
        }  # fmt: skip
        assert headers["content-type"] == "application/json"
        assert headers["user-agent"] == "wastatus/0.1" and headers["accept"] == "*/*"

    def test_a_resend_keeps_only_its_item_in_redis(self, redis, resend_env):
        """Waiting resends hold one item each with the event as stored (no catalog text), and
        no RQ job hash or result; once sent, nothing of them is left."""
        events = [failed_event(130429, n) for n in range(20)]  # the catalog says wait 60 s
        intake.store(redis, events)
        work(redis)
        assert redis.hlen(retry.ITEMS) == 20 and redis.zcard(retry.DUE) == 20
        item = json.loads(redis.hget(retry.ITEMS, events[0]["event_id"]))
        assert item["event"] == events[0] and item["attempt"] == 1
        jobs = [key for key in resend_keys(redis) if key.startswith("rq:job:")]
        assert len(jobs) == 1 and jobs[0].startswith("rq:job:wastatus-sender-wake-")  # 1 for all
        make_due(redis)
        work(redis)
        assert len(resend_env.wait_for(20)) == 20
        assert resend_keys(redis) <= {retry.WAKE, *jobs}  # the unused wake-up, nothing else
        assert ledger.summary(redis)["outcomes"]["resent"] == 20

    def test_catalog_minimum_delays_the_first_resend(self, redis, resend_env):
        """131049 is not resent before 24 hours; 130429 waits the catalog's 60 s."""
        slow, short = failed_event(131049), failed_event(130429)
        intake.store(redis, [slow, short])
        work(redis)
        assert resend_env.requests == []
        due = due_in(redis)
        assert due[slow["event_id"]] >= 86400 - 5
        assert 55 <= due[short["event_id"]] <= 60

    def test_transient_failures_are_resent_within_seconds(self, redis, resend_env):
        """131000, 131016 and the On-Premises 1014 go out at once, not after a delay."""
        events = [failed_event(131000), failed_event(131016), failed_event(1014)]
        events[2]["api"] = "on_premises"
        events[2]["event_id"] = intake.event_id(events[2])
        intake.store(redis, events)
        work(redis)
        codes = sorted(request.json()["error"]["code"] for request in resend_env.wait_for(3))
        assert codes == [1014, 131000, 131016]
        assert due_in(redis) == {}

    def test_failure_is_rescheduled_with_backoff_then_succeeds(self, redis, resend_env):
        """A 500 sends attempt 2 within the backoff's bound (0.2 s here), by the same sender
        job that waits for it; a 200 then ends it."""
        event = failed_event(131043)
        resend_env.script(Reply(500))
        intake.store(redis, [event])
        work(redis)
        first, second = resend_env.wait_for(2)
        assert first.status == 500 and first.json()["attempt"] == 1
        assert second.at - first.at <= 0.2 + 0.3  # the bound, plus time to answer and post
        assert second.json()["attempt"] == 2 and second.headers["wastatus-attempt"] == "2"
        assert second.headers["webhook-id"] == first.headers["webhook-id"]
        assert ledger.summary(redis)["outcomes"]["resent"] == 1
        assert due_in(redis) == {}

    def test_a_later_attempt_waits_in_the_due_set(self, redis, resend_env, monkeypatch):
        """A 500 with a backoff longer than the sender's time box leaves attempt 2 due within
        the backoff's bounds (base 20 s, equal jitter: 10 to 20 s)."""
        monkeypatch.setenv("WASTATUS_RETRY_BASE_DELAY", "20")
        monkeypatch.setenv("WASTATUS_RETRY_MAX_DELAY", "20")
        rules = tmp_rules(monkeypatch, "equal")
        event = failed_event(131043)
        resend_env.script(Reply(500))
        intake.store(redis, [event])
        work(redis)
        due = due_in(redis)[event["event_id"]]
        assert 10 - 1.5 <= due <= 20, rules
        assert json.loads(redis.hget(retry.ITEMS, event["event_id"]))["attempt"] == 2

    def test_429_retry_after_is_honoured(self, redis, resend_env):
        """A 429 with Retry-After: 120 is not retried sooner, though the backoff says 0.2 s,
        and holds the endpoint as long."""
        resend_env.script(Reply(429, {"Retry-After": "120"}))
        intake.store(redis, [failed_event(131043)])
        work(redis)
        assert 115 <= min(due_in(redis).values()) <= 120
        assert 115 <= float(redis.get(retry.HOLD)) - time.time() <= 120

    def test_exhaustion_alerts_and_dead_letters(self, redis, resend_env):
        """When every attempt fails the event is alerted as retry exhausted and dead-lettered."""
        resend_env.default = Reply(500)
        event = failed_event(131043)
        intake.store(redis, [event])
        work(redis)
        while make_due(redis):
            work(redis)
        assert len(resend_env.requests) == 3
        dead = deadletters.entries(redis, "retry")
        assert len(dead) == 1 and dead[0].item["event"] == event
        assert dead[0].item["attempts"] == 3 and dead[0].item["last_status"] == 500
        groups = alerts.open_groups(redis)
        assert len(groups) == 1 and groups[0]["retry_exhausted"] and groups[0]["pending"] == 1
        assert ledger.outcomes_of(redis, [event["event_id"]])[event["event_id"]] != "resent"
        assert redis.hlen(retry.ITEMS) == 0 and redis.zcard(retry.INFLIGHT) == 0

    def test_no_resend_url_alerts(self, redis, resend_env, monkeypatch):
        """Without WASTATUS_RETRY_URL a transient failure is alerted, never posted."""
        monkeypatch.delenv("WASTATUS_RETRY_URL")
        intake.store(redis, [failed_event(131043)])
        work(redis)
        assert resend_env.requests == [] and due_in(redis) == {}
        assert len(alerts.open_groups(redis)) == 1

    def test_resends_left_when_the_url_goes_are_alerted(self, redis, resend_env, monkeypatch):
        """Resends scheduled while a URL was set, and due after it was removed, are alerted and
        forgotten."""
        intake.store(redis, [failed_event(130429)])
        work(redis)
        monkeypatch.delenv("WASTATUS_RETRY_URL")
        make_due(redis)
        work(redis)
        assert resend_env.requests == [] and redis.hlen(retry.ITEMS) == 0
        [group] = alerts.open_groups(redis)
        assert group["retry_exhausted"]

    def test_body_is_json_of_the_enriched_event(self, redis, resend_env):
        """The request body is UTF-8 JSON holding the catalog's Japanese text."""
        intake.store(redis, [failed_event(131043)])
        work(redis)
        body = resend_env.wait_for(1)[0].body
        assert json.loads(body.decode("utf-8"))["catalog"]["action"]["ja"]


class TestSenderJob:
    """One sender job at a time, time-boxed, queuing its successor while resends are due."""

    def test_one_sender_is_queued_at_a_time(self, redis, resend_env):
        """Asking for a sender twice queues one job; it clears the flag when it starts."""
        assert retry.request_send(redis) and not retry.request_send(redis)
        assert len(queues.get_queue(redis, queues.RETRY)) == 1
        work(redis)
        assert retry.request_send(redis)

    def test_sender_stops_at_its_time_box_and_queues_its_successor(self, redis, resend_env):
        """Against a slow receiver (50 ms an answer) a sender job returns after about
        SEND_SECONDS with resends still due, and leaves one successor queued."""
        resend_env.default = Reply(delay=0.05)
        intake.store(redis, [failed_event(131043, n) for n in range(600)])
        work(redis, [queues.EVENTS])
        redis.delete(retry.SEND_FLAG)
        queues.get_queue(redis, queues.RETRY).empty()  # the drain's request: run it here instead
        started = time.monotonic()
        done = sender.send_due()
        elapsed = time.monotonic() - started
        assert sender.SEND_SECONDS <= elapsed <= sender.SEND_SECONDS + 1.0
        assert 0 < done["resent"] < 600
        assert redis.zcard(retry.DUE) == 600 - done["resent"] and redis.zcard(retry.INFLIGHT) == 0
        assert len(queues.get_queue(redis, queues.RETRY)) == 1 and redis.exists(retry.SEND_FLAG)


class TestHold:
    """A 429 or 503 holds the whole endpoint back, not only the resend that got it."""

    def test_429_on_the_first_request_holds_the_whole_batch(self, redis, resend_env):
        """A receiver answering 429 with Retry-After: 5 to the first request sees no other
        request for 5 s; then every resend goes out, through a real worker and its scheduler."""
        resend_env.script(Reply(429, {"Retry-After": "5"}))
        events = [failed_event(131043, n) for n in range(30)]
        intake.store(redis, events)
        with running_worker(os.environ) as _:
            requests = resend_env.wait_for(31, timeout=30)
        first, rest = requests[0], requests[1:]
        assert first.status == 429
        assert min(request.at for request in rest) - first.at >= 4.9
        assert max(request.at for request in rest) - first.at <= 9
        assert sorted(request.json()["event_id"] for request in rest) == sorted(
            event["event_id"] for event in events
        )
        ids = [event["event_id"] for event in events]
        assert set(ledger.outcomes_of(redis, ids).values()) == {"resent"}

    def test_503_without_retry_after_holds_briefly(self, redis, resend_env):
        """A 503 that names no Retry-After holds the endpoint for a second, not forever: the
        other resends follow a second later, in the same sender job."""
        resend_env.script(Reply(503))
        intake.store(redis, [failed_event(131043, n) for n in range(3)])
        work(redis)
        first, *rest = resend_env.wait_for(4)
        assert first.status == 503 and len(rest) == 3
        later = min(request.at for request in rest) - first.at
        assert retry.HOLD_WITHOUT_RETRY_AFTER - 0.05 <= later <= retry.HOLD_WITHOUT_RETRY_AFTER + 1


class TestCrash:
    """A sender that dies loses and doubles nothing it had not posted."""

    def test_crash_between_claim_and_post_resends_each_once(self, redis, resend_env, monkeypatch):
        """Items claimed by a sender that died before posting go back once its lease ends and
        are resent once each; the ledger has one outcome for each."""
        monkeypatch.setenv("WASTATUS_DRAIN_LEASE", "1")
        events = [failed_event(130429, n) for n in range(10)]
        intake.store(redis, events)
        work(redis)
        redis.zadd(retry.DUE, dict.fromkeys(redis.zrange(retry.DUE, 0, -1), time.time() - 1))
        dead_sender = retry.claim(redis, batch=100, lease=1.0)  # and then it died
        assert len(dead_sender.items) == 10 and redis.zcard(retry.INFLIGHT) == 10
        assert retry.claim(redis, batch=100, lease=1.0).items == []  # leased: nobody else
        time.sleep(1.1)
        runner.recover_stranded(redis)  # a worker's maintenance
        work(redis)
        requests = resend_env.wait_for(10)
        time.sleep(0.2)
        assert len(resend_env.requests) == 10
        assert len({request.headers["webhook-id"] for request in requests}) == 10
        ids = [event["event_id"] for event in events]
        assert set(ledger.outcomes_of(redis, ids).values()) == {"resent"}
        assert ledger.summary(redis)["conflicts"] == 0
        assert redis.zcard(retry.INFLIGHT) == 0 and redis.hlen(retry.CRASHES) == 0

    def test_an_item_whose_sender_keeps_dying_is_dead_lettered(
        self, redis, resend_env, monkeypatch
    ):
        """An item whose lease ended WASTATUS_DRAIN_MAX_DELIVERIES times is alerted and kept as
        a dead letter instead of killing senders forever."""
        monkeypatch.setenv("WASTATUS_DRAIN_MAX_DELIVERIES", "2")
        event = failed_event(130429)
        intake.store(redis, [event])
        work(redis)
        for _ in range(2):
            make_due(redis)
            assert len(retry.claim(redis, batch=10, lease=0.01).items) == 1
            time.sleep(0.02)
        make_due(redis)
        work(redis)
        assert resend_env.requests == []
        [dead] = deadletters.entries(redis, "retry")
        assert dead.item["crashes"] == 2 and "died" in dead.reason
        assert alerts.open_groups(redis)[0]["retry_exhausted"]


class TestLegacyJobs:
    """Resend jobs queued by earlier versions still run after an upgrade."""

    def test_old_job_moves_its_resend_into_the_due_set(self, redis, resend_env):
        """`workers.retry.resend(event, route, attempt)` queued before the upgrade (with the
        enriched event) is sent by the new path, with the same body and webhook-id."""
        event = enrich(failed_event(131043))
        chosen = Route("retry-transient", "retry", retry=RetrySchedule(attempts=3))
        queue = queues.get_queue(redis, queues.RETRY)
        queue.enqueue(retry.LEGACY_JOB, event, chosen.to_dict(), 2, job_id="old", result_ttl=0)
        redis.zadd(retry.PENDING, {f"wastatus-resend-{event['event_id']}-2": time.time()})
        work(redis)
        [request] = resend_env.wait_for(1)
        before = {**event, "attempt": 2, "error": event["errors"][0]}
        assert (
            request.body == json.dumps(before, ensure_ascii=False, separators=(",", ":")).encode()
        )
        assert request.headers["webhook-id"] == f"msg_{event['event_id']}"
        assert request.headers["wastatus-attempt"] == "2"
        assert ledger.outcomes_of(redis, [event["event_id"]])[event["event_id"]] == "resent"
        assert redis.zcard(retry.PENDING) == 0

    def test_old_job_keeps_its_attempt_count(self, redis, resend_env):
        """An old job on its last attempt that fails is exhausted, not given new attempts."""
        resend_env.default = Reply(500)
        event = enrich(failed_event(131043))
        chosen = Route("retry-transient", "retry", retry=RetrySchedule(attempts=3))
        queue = queues.get_queue(redis, queues.RETRY)
        queue.enqueue(retry.LEGACY_JOB, event, chosen.to_dict(), 3, result_ttl=0)
        work(redis)
        assert len(resend_env.requests) == 1
        assert len(deadletters.entries(redis, "retry")) == 1


class TestRate:
    """WASTATUS_RETRY_RATE caps resends per second."""

    def test_rate_cap_spreads_resends(self, redis, resend_env, monkeypatch):
        """With a cap of 20/s, 50 due resends take at least 1.5 s and no second sees more than
        the cap plus its one-second burst."""
        monkeypatch.setenv("WASTATUS_RETRY_RATE", "20/s")
        intake.store(redis, [failed_event(131043, n) for n in range(50)])
        work(redis)
        requests = resend_env.wait_for(50)
        times = sorted(request.at for request in requests)
        assert times[-1] - times[0] >= 1.4
        for start in times:
            assert sum(1 for at in times if start <= at < start + 1.0) <= 41
        assert sum(1 for at in times if at < times[0] + 0.5) <= 31

    def test_without_a_cap_a_batch_goes_out_together(self, redis, resend_env):
        """With no cap, 50 resends to a fast receiver take well under a second."""
        intake.store(redis, [failed_event(131043, n) for n in range(50)])
        work(redis)
        times = sorted(request.at for request in resend_env.wait_for(50))
        assert times[-1] - times[0] < 1.0


@contextlib.contextmanager
def running_worker(env: dict[str, str]):
    """A `wastatus worker` process for the block, stopped as a process manager would."""
    command = [sys.executable, "-m", "webhook.cli", "worker"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    worker = subprocess.Popen(command, env=dict(env), **quiet)
    try:
        yield worker
    finally:
        worker.terminate()
        worker.wait(20)


class TestFairness:
    """Alerts do not wait behind a storm of resends."""

    def test_first_alert_of_a_new_group_arrives_during_a_resend_storm(
        self, redis, resend_env, monkeypatch
    ):
        """With 3,000 resends going to a slow receiver (20 ms each), the first alert of a new
        group reaches its receiver within 5 s, while resends are still being sent."""
        resend_env.default = Reply(delay=0.02)
        alert_receiver = Receiver().start()
        try:
            monkeypatch.setenv("WASTATUS_GROUP_WAIT", "0")
            monkeypatch.setenv("WASTATUS_ALERT_WEBHOOK_URL", alert_receiver.url + "/alerts")
            intake.store(redis, [failed_event(131043, n) for n in range(3000)])
            with running_worker(os.environ):
                resend_env.wait_for(50, timeout=30)  # the storm is on
                alert = failed_event(131026, 9999)
                stored = time.time()
                intake.store(redis, [alert])
                [request] = alert_receiver.wait_for(1, timeout=30)
                sent_then = len(resend_env.requests)
                assert request.at - stored < 5.0
                assert redis.zcard(retry.DUE) + redis.zcard(retry.INFLIGHT) > 0
            assert sent_then < 3000
        finally:
            alert_receiver.stop()


class TestWake:
    """A resend due later is sent about when it is due, with nothing else to wake a worker."""

    def test_a_resend_due_in_two_seconds_goes_out_about_then(self, redis, resend_env):
        """A 500 rescheduled 2 s later (Retry-After: 2) is sent again 2 to 3.5 s after."""
        resend_env.script(Reply(500, {"Retry-After": "2"}))
        intake.store(redis, [failed_event(131043)])
        with running_worker(os.environ):
            first, second = resend_env.wait_for(2, timeout=20)
        assert 2.0 <= second.at - first.at <= 3.5


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
