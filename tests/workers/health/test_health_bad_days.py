"""Health events on bad days: a drain job SIGKILLed mid-batch, two workers on one entity at
once. Real Redis, real processes, a real RQ worker for the rerun, a loopback receiver."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
import redis as redis_lib
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from tests.workers.alerting import drive, drive_for
from webhook.health_payload import normalize
from workers import drain
from workers.alerting import groups
from workers.health import tracker
from workers.inbox import intake
from workers.outcomes import ledger
from workers.queues import ALERTS, get_queue
from workers.routing.rules import load_rules
from workers.settings import read

WABA = "102290129340398"
T0 = 1_796_000_000


def template(template_id: str, value: str, at: int) -> dict:
    loaded = {"event": value, "message_template_id": template_id,
              "message_template_name": f"t{template_id}",
              "message_template_language": "ja"}  # fmt: skip
    event = normalize("message_template_status_update", loaded, WABA, time.time())
    return event | {"event_id": f"t{template_id}-{value}-{at}", "timestamp": at}


def number(value: str, at: int) -> dict:
    loaded = {"display_phone_number": "15550783881", "event": value,
              "current_limit": "TIER_10K"}  # fmt: skip
    event = normalize("phone_number_quality_update", loaded, WABA, time.time())
    return event | {"event_id": f"n-{value}-{at}", "timestamp": at}


def account(value: str, at: int) -> dict:
    event = normalize("account_update", {"event": value}, WABA, time.time())
    return event | {"event_id": f"a-{value}-{at}", "timestamp": at}


@pytest.fixture
def env(redis_url, receiver, monkeypatch) -> dict:
    """Alerts to the receiver at once, a 1 s drain lease; the same for child processes."""
    values = {"REDIS_URL": redis_url, "WASTATUS_ALERT_WEBHOOK_URL": receiver.url + "/alerts",
              "WASTATUS_GROUP_WAIT": "0", "WASTATUS_DRAIN_LEASE": "1"}  # fmt: skip
    for name in ("WASTATUS_ALERT_URLS", "WASTATUS_RULES", "WASTATUS_RETRY_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return {**os.environ, **values}


def drainer(env: dict, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "tests.workers.health.drainer", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def notifications(receiver) -> list[dict]:
    return [request.json() for request in receiver.requests]


def claimed(redis) -> int:
    return sum(redis.llen(key) for key in redis.keys(drain.PROCESSING_PREFIX + "*"))


def ended(redis, events: list[dict]) -> dict[str, str | None]:
    return ledger.outcomes_of(redis, [event["event_id"] for event in events])


def settle(redis, events: list[dict], notified: int, receiver) -> None:
    """Worker passes until every event has an outcome and `notified` notifications arrived."""
    drive(redis, lambda: len(receiver.requests) >= notified
          and None not in ended(redis, events).values(), timeout=30)  # fmt: skip


def each_ends_once(redis, events: list[dict], receiver) -> None:
    """Every event counted once, ended once (no ledger conflict), in at most one notification,
    and alerted exactly when a notification carried it."""
    assert sum(tracker.summary(redis)["events"].values()) == len(events)
    settle(redis, events, 0, receiver)
    assert ledger.summary(redis)["conflicts"] == 0
    carried = [item["event_id"] for alert in notifications(receiver) for item in alert["alerts"]]
    assert len(carried) == len(set(carried))
    alerted = {key for key, value in ended(redis, events).items() if value == "alerted"}
    assert alerted == set(carried)


class TestKilledDrainJob:
    """A drain job SIGKILLed while it handled health events: its rerun takes each event once."""

    @pytest.mark.parametrize("point", ["after-process", "after-take-1", "after-take-3"])
    def test_each_event_ends_once_and_each_notification_is_sent_once(
        self, redis, receiver, env, point
    ):
        """PAUSED alerted, then a batch (its REINSTATED, a FLAGGED number, a benign account
        event, and a template paused and reinstated within it) dies at `point`; after the
        lease the rerun finishes: one firing each, one resolved each, one outcome each."""
        paused = template("1", "PAUSED", T0)
        intake.store(redis, [paused])
        settle(redis, [paused], 1, receiver)
        batch = [template("1", "REINSTATED", T0 + 5), number("FLAGGED", T0 + 6),
                 account("VERIFIED_ACCOUNT", T0 + 7), template("2", "PAUSED", T0 + 8),
                 template("2", "REINSTATED", T0 + 20)]  # fmt: skip
        intake.store(redis, batch)
        child = drainer(env, point)
        output = child.communicate(timeout=60)[0].decode()
        assert child.returncode == -9, output  # it died at the kill point
        assert claimed(redis) > 0  # holding its batch
        time.sleep(1.2)  # the lease ends
        drain.request_drain(redis)
        settle(redis, [paused, *batch], 4, receiver)
        drive_for(redis, 1.0)  # nothing more comes

        sent = notifications(receiver)
        kinds = sorted((alert["status"], alert["alerts"][0]["event_id"]) for alert in sent)
        assert kinds == sorted([
            ("firing", paused["event_id"]),
            ("resolved", batch[0]["event_id"]),
            ("firing", batch[1]["event_id"]),
            ("resolved", batch[4]["event_id"]),
        ])  # fmt: skip
        assert ended(redis, [paused, *batch]) == {
            paused["event_id"]: "alerted", batch[0]["event_id"]: "alerted",
            batch[1]["event_id"]: "alerted", batch[2]["event_id"]: "dropped",
            batch[3]["event_id"]: "alerted", batch[4]["event_id"]: "alerted",
        }  # fmt: skip
        assert ledger.summary(redis)["conflicts"] == 0
        counts = tracker.summary(redis)["events"]
        assert counts == {"message_template_status_update/PAUSED": 2,
                          "message_template_status_update/REINSTATED": 2,
                          "phone_number_quality_update/FLAGGED": 1,
                          "account_update/VERIFIED_ACCOUNT": 1}  # fmt: skip
        assert [problem["event"] for problem in tracker.open_problems(redis)] == ["FLAGGED"]
        assert claimed(redis) == 0 and redis.llen(intake.INBOX) == 0


class TestRestrictionExpiry:
    """A drain job SIGKILLed right after the MULTI that opened a restriction problem: the
    restriction still resolves when it ends."""

    def test_the_restriction_expires_though_nothing_after_the_transaction_ran(
        self, redis, receiver, env
    ):
        """ACCOUNT_RESTRICTION ending in 4 s; its drain process dies just after the EXEC. The
        rerun takes it no second time, and after the end one resolved RESTRICTION_EXPIRED
        arrives (its expiry job was written with the problem, not queued after)."""
        end = int(time.time()) + 4
        loaded = {
            "event": "ACCOUNT_RESTRICTION",
            "restriction_info": [
                {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": end}
            ],
        }
        restricted = normalize("account_update", loaded, WABA, time.time())
        restricted |= {"event_id": "a-restricted", "timestamp": T0}
        intake.store(redis, [restricted])
        child = drainer(env, "after-exec")
        output = child.communicate(timeout=60)[0].decode()
        assert child.returncode == -9, output
        assert [problem["event"] for problem in tracker.open_problems(redis, prune=False)] == [
            "ACCOUNT_RESTRICTION"
        ]
        scheduled = ScheduledJobRegistry(queue=get_queue(redis, ALERTS))
        assert [job.func_name for job in Job.fetch_many(scheduled.get_job_ids(), redis,
                                                        serializer=JSONSerializer)] == [
            tracker.EXPIRE_JOB
        ]  # fmt: skip
        time.sleep(1.2)  # the lease ends
        drain.request_drain(redis)
        drive(redis, lambda: any(alert["status"] == "resolved"
                                 for alert in notifications(receiver)), timeout=30)  # fmt: skip
        assert time.time() >= end
        [resolved] = [alert for alert in notifications(receiver) if alert["status"] == "resolved"]
        assert resolved["alerts"][0]["event"] == "RESTRICTION_EXPIRED"
        assert tracker.open_problems(redis, prune=False) == []
        counts = tracker.summary(redis)["events"]
        assert counts["account_update/ACCOUNT_RESTRICTION"] == 1
        assert claimed(redis) == 0 and redis.llen(intake.INBOX) == 0


class TestRecoveryBeforeFiring:
    """A recovery that comes before its problem was notified: one notification says both."""

    def test_one_resolved_notification_names_the_problem_and_how_long_it_lasted(
        self, redis, receiver, env
    ):
        """PAUSED then REINSTATED 12 s later in one batch: no firing, one resolved with
        `brief` {problem: PAUSED, seconds: 12}, both events alerted once."""
        events = [template("3", "PAUSED", T0), template("3", "REINSTATED", T0 + 12)]
        intake.store(redis, events)
        settle(redis, events, 1, receiver)
        drive_for(redis, 1.0)
        [alert] = notifications(receiver)
        assert alert["status"] == "resolved"
        assert [item["event"] for item in alert["alerts"]] == ["REINSTATED", "PAUSED"]
        assert alert["alerts"][0]["brief"] == {"problem": "PAUSED", "seconds": 12}
        assert "Resolved within 12 s" in alert["title"] or "12 秒で解決" in alert["title"]
        assert set(ended(redis, events).values()) == {"alerted"}
        assert tracker.open_problems(redis) == []

    def test_a_recovery_after_the_firing_has_no_brief(self, redis, receiver, env):
        """The problem was notified first: the resolved notification is a plain one."""
        paused = template("4", "PAUSED", T0)
        intake.store(redis, [paused])
        settle(redis, [paused], 1, receiver)
        back = template("4", "REINSTATED", T0 + 30)
        intake.store(redis, [back])
        settle(redis, [back], 2, receiver)
        firing, resolved = notifications(receiver)
        assert (firing["status"], resolved["status"]) == ("firing", "resolved")
        assert "brief" not in resolved["alerts"][0]


def expected(events: list[dict]) -> tuple[str, bool]:
    """The state the latest event (Meta's timestamps) leaves: its status, and a problem open."""
    last = max(events, key=lambda event: event["timestamp"])
    return last["event"], last["event"] == "PAUSED"


class TestConcurrentWorkers:
    """Two drain processes taking batches of one entity at once end in Meta's latest state."""

    @pytest.mark.parametrize("round_", range(8))
    def test_two_drainers_on_one_template_end_in_the_latest_state(
        self, redis, receiver, env, round_
    ):
        """60 PAUSED/REINSTATED changes of one template, shuffled, in batches of 2 taken by
        two processes started together: the kept status is the latest change's, a problem is
        open iff it is PAUSED, each event is counted once, ends once (no ledger conflict) and
        is in at most one notification."""
        rng = random.Random(round_)
        values = [rng.choice(["PAUSED", "REINSTATED"]) for _ in range(60)]
        events = [template("9", value, T0 + 10 * index) for index, value in enumerate(values)]
        rng.shuffle(events)
        intake.store(redis, events)
        two = {**env, "WASTATUS_DRAIN_BATCH": "2"}
        children = [drainer(two, "--together", "2"), drainer(two, "--together", "2")]
        batches = []
        for child in children:
            output = child.communicate(timeout=120)[0].decode()
            assert child.returncode == 0, output
            batches.append(int(output.split("batches ")[-1]))
        assert min(batches) > 0, batches  # both took part
        status, is_open = expected(events)
        [item] = tracker.entities(redis)
        assert item["state"]["status"] == status
        assert bool(tracker.open_problems(redis, prune=False)) == is_open
        each_ends_once(redis, events, receiver)

    def test_four_drainers_on_40_templates_end_each_in_its_latest_state(self, redis, receiver, env):
        """400 PAUSED/REINSTATED changes of 40 templates, shuffled, in batches of 5 taken by
        four processes started together (the events of different templates no longer retry
        each other): each template keeps its latest change, a problem is open for exactly the
        paused ones, each event is counted once, ends once and is in at most one notification."""
        rng = random.Random(40)
        events = [template(str(100 + n % 40), rng.choice(["PAUSED", "REINSTATED"]), T0 + n)
                  for n in range(400)]  # fmt: skip
        rng.shuffle(events)
        intake.store(redis, events)
        five = {**env, "WASTATUS_DRAIN_BATCH": "5"}
        children = [drainer(five, "--together", "4") for _ in range(4)]
        for child in children:
            output = child.communicate(timeout=180)[0].decode()
            assert child.returncode == 0, output
        latest: dict[str, dict] = {}
        for event in events:
            key = tracker.entity_key(event)
            if key not in latest or event["timestamp"] > latest[key]["timestamp"]:
                latest[key] = event
        kept = {item["key"]: item["state"]["status"] for item in tracker.entities(redis)}
        assert kept == {key: event["event"] for key, event in latest.items()}
        paused = {key for key, event in latest.items() if event["event"] == "PAUSED"}
        problems = tracker.open_problems(redis, prune=False)
        assert sorted(problem["entity_key"] for problem in problems) == sorted(paused)
        each_ends_once(redis, events, receiver)


def race(redis, monkeypatch, event: dict, interloper, now: float) -> tuple[str, int]:
    """Take `event` with `interloper()` run (on its own connection) between the take's reads
    and its EXEC, the first time only: (its outcome, how many times it decided)."""
    decide, stage, decisions = tracker._decide, tracker._stage, []

    def counted(pipe, raw, *args, **kwargs):
        if raw["event_id"] == event["event_id"]:  # not the interloper's own takes
            decisions.append(1)
        return decide(pipe, raw, *args, **kwargs)

    def stage_after_interloper(connection, pipe, plan, *args, **kwargs):
        if plan["event"]["event_id"] == event["event_id"] and len(decisions) == 1:
            interloper()
        return stage(connection, pipe, plan, *args, **kwargs)

    monkeypatch.setattr(tracker, "_decide", counted)
    monkeypatch.setattr(tracker, "_stage", stage_after_interloper)
    outcome = tracker.take(redis, event, RULES, SETTINGS, now)
    return outcome, len(decisions)


def elsewhere(redis_url: str, work) -> Callable[[], None]:
    """`work(connection)` on a connection of its own, as another worker would."""

    def run() -> None:
        other = redis_lib.Redis.from_url(redis_url)
        try:
            work(other)
        finally:
            other.close()

    return run


SETTINGS = read({})
RULES = load_rules(None, SETTINGS)


class TestWatchedKeys:
    """A take decides again when its own entity changed under it, not when another did."""

    def test_another_entitys_problem_does_not_make_it_decide_again(
        self, redis, redis_url, monkeypatch
    ):
        """Template 6 opens a problem (writing the open problems) meanwhile: one decision."""
        other = elsewhere(redis_url, lambda connection: tracker.process(
            connection, [template("6", "PAUSED", T0)], RULES, SETTINGS))  # fmt: skip
        paused = template("5", "PAUSED", T0)
        assert race(redis, monkeypatch, paused, other, time.time()) == ("submitted", 1)
        assert len(tracker.open_problems(redis, prune=False)) == 2

    def test_the_same_entitys_take_makes_it_decide_again(self, redis, redis_url, monkeypatch):
        """Template 5's later REINSTATED is taken by another worker meanwhile: two decisions,
        and the PAUSED is stale: nothing open."""
        other = elsewhere(redis_url, lambda connection: tracker.process(
            connection, [template("5", "REINSTATED", T0 + 10)], RULES, SETTINGS))  # fmt: skip
        paused = template("5", "PAUSED", T0)
        assert race(redis, monkeypatch, paused, other, time.time()) == ("stale", 2)
        assert tracker.open_problems(redis, prune=False) == []

    def test_pruning_its_entitys_problem_makes_it_decide_again(self, redis, redis_url, monkeypatch):
        """Template 5's open problem lost its alert group; `open_problems` prunes it meanwhile:
        two decisions, and the new PAUSED opens a problem of its own (since now, not since the
        pruned one)."""
        before = time.time() - 60
        tracker.take(redis, template("5", "PAUSED", T0), RULES, SETTINGS, before)
        [problem] = tracker.open_problems(redis, prune=False)
        for gid in problem["gids"]:
            redis.delete(groups.group_hash(gid))  # its group closed
        prune = elsewhere(redis_url, lambda connection: tracker.open_problems(connection))
        now = time.time()
        again = template("5", "PAUSED", T0 + 10)
        assert race(redis, monkeypatch, again, prune, now) == ("submitted", 2)
        [problem] = tracker.open_problems(redis, prune=False)
        assert problem["since"] == now
