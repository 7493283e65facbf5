"""Dead letters: kept whole, listed oldest first, replayed to where they came from."""

from __future__ import annotations

import json

import pytest

from bench._receiver import Reply
from tests.workers.alerting import drive, enriched, route, work
from workers.alerting import groups
from workers.inbox import intake
from workers.outcomes import deadletters, ledger
from workers.replay import replay


def dead_alert(redis, receiver, monkeypatch, count: int):
    """`count` events whose one alert died at `receiver` (answering 500, one attempt)."""
    monkeypatch.setenv("WASTATUS_ALERT_WEBHOOK_URL", receiver.url + "/hook")
    monkeypatch.setenv("WASTATUS_ALERT_ATTEMPTS", "1")
    monkeypatch.delenv("WASTATUS_RULES", raising=False)
    monkeypatch.delenv("WASTATUS_ALERT_URLS", raising=False)
    receiver.default = Reply(500)
    events = enriched(131049, count)
    groups.submit(redis, events, route())
    drive(redis, lambda: deadletters.count(redis) == 1)
    [dead] = deadletters.entries(redis)
    return events, dead


class TestStore:
    def test_put_list_and_count(self, redis):
        """Items come back whole, oldest first, and count says how many there are."""
        first = deadletters.put(redis, "retry", {"event": {"event_id": "a"}}, "5 attempts")
        second = deadletters.put(redis, "event", {"event": {"event_id": "b"}}, "crashed 3 times")
        found = deadletters.entries(redis)
        assert [entry.id for entry in found] == [first, second]
        assert found[0].item == {"event": {"event_id": "a"}}
        assert found[1].reason == "crashed 3 times"
        assert deadletters.count(redis) == 2
        assert [entry.id for entry in deadletters.entries(redis, kind="event")] == [second]

    def test_put_on_a_pipeline_lands_with_it(self, redis):
        """put works on a pipeline, so it lands atomically with a ledger entry."""
        with redis.pipeline() as pipe:
            dead_id = deadletters.put(pipe, "event", {"event_id": "c"}, "poison")
            ledger.record(pipe, "dead", ["c"])
            assert deadletters.count(redis) == 0
            pipe.execute()
        assert deadletters.get(redis, dead_id).kind == "event"
        assert ledger.outcomes_of(redis, ["c"]) == {"c": "dead"}

    def test_unknown_kind_is_refused(self, redis):
        """Only the documented kinds are accepted."""
        with pytest.raises(ValueError, match="unknown dead-letter kind"):
            deadletters.put(redis, "misc", {}, "why")


class TestReplay:
    def test_event_replay_goes_back_to_the_inbox(self, redis):
        """A retry or poison event is pushed back into the inbox with a drain job queued."""
        event = enriched(131000, 1)[0]
        dead_id = deadletters.put(redis, "retry", {"event": event, "attempts": 5}, "exhausted")
        done = replay(redis, dead_id)
        assert done == {"id": dead_id, "kind": "retry", "requeued": "inbox",
                        "event_id": event["event_id"]}  # fmt: skip
        assert json.loads(redis.lindex(intake.INBOX, 0))["event_id"] == event["event_id"]
        assert deadletters.count(redis) == 0

    def test_unknown_id_raises(self, redis):
        """Replaying an id that is not there says so."""
        with pytest.raises(deadletters.UnknownDeadLetter):
            replay(redis, "0000000000000-nope")

    def test_dead_alert_replays_once_the_receiver_is_back(self, redis, receiver, monkeypatch):
        """A notification that died while the receiver was down is delivered on replay."""
        events, dead = dead_alert(redis, receiver, monkeypatch, 4)
        receiver.default = Reply(200)
        done = replay(redis, dead.id)
        assert done["requeued"] == "notification"
        drive(redis, lambda: len(receiver.requests) >= 2)
        replayed = receiver.requests[1].json()
        assert replayed["count"] == 4
        assert replayed["replay_of"] == dead.item["notification_id"]
        assert deadletters.count(redis) == 0
        # delivered at last: the events end alerted, their dead outcome forgotten, no conflict
        outcomes = ledger.outcomes_of(redis, [event["event_id"] for event in events])
        assert set(outcomes.values()) == {"alerted"}
        summary = ledger.summary(redis)
        assert summary["conflicts"] == 0
        assert summary["outcomes"].get("dead", 0) == 0 and summary["outcomes"]["alerted"] == 4

    def test_a_replayed_alert_that_dies_again_is_dead_once(self, redis, receiver, monkeypatch):
        """Replayed while the receiver is still down: a new dead letter, events dead once."""
        events, dead = dead_alert(redis, receiver, monkeypatch, 3)
        replay(redis, dead.id)
        drive(redis, lambda: len(receiver.requests) >= 2 and deadletters.count(redis) == 1)
        [again] = deadletters.entries(redis)
        assert again.id != dead.id and again.item["event_ids"]
        outcomes = ledger.outcomes_of(redis, [event["event_id"] for event in events])
        assert set(outcomes.values()) == {"dead"}
        summary = ledger.summary(redis)
        assert summary["conflicts"] == 0 and summary["outcomes"]["dead"] == 3


class TestReplayLedger:
    def test_a_replayed_event_ends_in_one_outcome_not_a_conflict(
        self, redis, tmp_path, monkeypatch
    ):
        """An exhausted resend, alerted, replayed, then dropped: one outcome, no conflict."""
        rules = tmp_path / "rules.yaml"
        rules.write_text("routes:\n  - name: drop-all\n    action: drop\n")
        monkeypatch.setenv("WASTATUS_RULES", str(rules))
        event = enriched(131000, 1)[0]
        ledger.record(redis, "alerted", [event["event_id"]])
        dead_id = deadletters.put(redis, "retry", {"event": event, "attempts": 5}, "exhausted")

        replay(redis, dead_id)
        work(redis)

        assert ledger.outcomes_of(redis, [event["event_id"]]) == {event["event_id"]: "dropped"}
        summary = ledger.summary(redis)
        assert summary["conflicts"] == 0
        assert (summary["outcomes"]["alerted"], summary["outcomes"]["dropped"]) == (0, 1)
