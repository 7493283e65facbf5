"""What taking health events leaves in Redis: bounded by entities, not by events, and still
enough to take each event once (real Redis, a real RQ worker pass, a loopback receiver)."""

from __future__ import annotations

import json
import time

import pytest

from tests.workers.alerting import drive
from webhook.health_payload import normalize
from workers.health import tracker
from workers.outcomes import ledger
from workers.routing.rules import load_rules
from workers.settings import read

T0 = 1_796_000_000


def template(template_id: str, value: str, at: int) -> dict:
    loaded = {"event": value, "message_template_id": template_id,
              "message_template_name": f"t{template_id}",
              "message_template_language": "ja"}  # fmt: skip
    event = normalize("message_template_status_update", loaded, "1000", time.time())
    return event | {"event_id": f"s{template_id}-{value}-{at}", "timestamp": at}


def storm(count: int, templates: int, start: int) -> list[dict]:
    """`count` distinct benign changes (APPROVED) spread over `templates` templates."""
    return [template(str(n % templates), "APPROVED", start + n) for n in range(count)]


def health_keys(redis) -> list[bytes]:
    return list(redis.scan_iter(match="wastatus:health:*", count=1000))


def health_bytes(redis) -> int:
    return sum(redis.memory_usage(key, samples=0) or 0 for key in health_keys(redis))


@pytest.fixture
def alerting(redis_url, receiver, monkeypatch):
    """Alerts to the receiver at once; the settings and rules a drain job would use."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("WASTATUS_ALERT_WEBHOOK_URL", receiver.url + "/alerts")
    monkeypatch.setenv("WASTATUS_GROUP_WAIT", "0")
    for name in ("WASTATUS_ALERT_URLS", "WASTATUS_RULES", "WASTATUS_RETRY_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = read({"WASTATUS_ALERT_WEBHOOK_URL": receiver.url + "/alerts",
                     "WASTATUS_GROUP_WAIT": "0"})  # fmt: skip
    return settings, load_rules(None, settings)


class TestTakenEventsBound:
    """A storm of distinct health events grows Redis by entities, not by events."""

    def test_4000_distinct_events_over_20_templates_cost_what_2000_do(self, redis, alerting):
        """2,000 benign changes over 20 templates, then 2,000 more: the health keys stay 22
        (20 states, the entity index, the counts) and their bytes do not grow; no key per
        event. Taken again (a rerun of every batch), none is taken twice: the ledger knows."""
        settings, rules = alerting
        first, second = storm(2000, 20, T0), storm(2000, 20, T0 + 10_000)
        for start in range(0, 2000, 500):
            tracker.process(redis, first[start : start + 500], rules, settings)
        keys, size = len(health_keys(redis)), health_bytes(redis)
        for start in range(0, 2000, 500):
            tracker.process(redis, second[start : start + 500], rules, settings)
        assert len(health_keys(redis)) == keys == 22
        assert health_bytes(redis) <= size * 1.05  # what grew is the events' ledger entries
        assert size / 20 < 1024  # bytes per entity, whatever its number of events
        counted = tracker.summary(redis)["events"]
        assert counted == {"message_template_status_update/APPROVED": 4000}
        for batch in (first, second):
            assert tracker.process(redis, batch, rules, settings) == []  # all "done"
        assert tracker.summary(redis)["events"] == counted
        assert ledger.summary(redis)["conflicts"] == 0

    def test_a_pending_id_is_kept_until_its_notification_is_delivered(
        self, redis, receiver, alerting
    ):
        """PAUSED is taken: its id is pending (no outcome yet) and a rerun skips it; once its
        notification is delivered the ledger knows it, the next take of the template (its
        recovery, pending in turn) forgets the id, and a rerun still skips it."""
        settings, rules = alerting
        paused = template("7", "PAUSED", T0)
        state = tracker.STATE_PREFIX + "template:7"
        assert tracker.take(redis, paused, rules, settings, time.time()) == "submitted"
        assert json.loads(redis.hget(state, tracker.PENDING)) == [paused["event_id"]]
        assert tracker.take(redis, paused, rules, settings, time.time()) == "done"
        drive(redis, lambda: ledger.outcomes_of(redis, [paused["event_id"]])[paused["event_id"]])
        back = template("7", "REINSTATED", T0 + 5)
        assert tracker.take(redis, back, rules, settings, time.time()) == "resolved"
        assert json.loads(redis.hget(state, tracker.PENDING)) == [back["event_id"]]
        assert tracker.take(redis, paused, rules, settings, time.time()) == "done"
        assert len(receiver.requests) == 1  # the firing; the resolved one is not sent yet
        assert tracker.summary(redis)["events"]["message_template_status_update/PAUSED"] == 1


class TestTrimAndTakenOnce:
    """Forgetting entities (MAX_ENTITIES) never makes an event taken twice."""

    def test_a_forgotten_entitys_events_are_still_taken_once(self, redis, alerting, monkeypatch):
        """With room for 2 entities, 3 templates' benign events: the first is forgotten, and
        its event, taken again, is "done" (its ledger outcome), not counted twice."""
        monkeypatch.setattr(tracker, "MAX_ENTITIES", 2)
        settings, rules = alerting
        events = [template(str(n), "APPROVED", T0 + n) for n in range(3)]
        for event in events:
            tracker.process(redis, [event], rules, settings)
        assert not redis.exists(tracker.STATE_PREFIX + "template:0")
        assert tracker.take(redis, events[0], rules, settings, time.time()) == "done"
        counted = tracker.summary(redis)["events"]
        assert counted == {"message_template_status_update/APPROVED": 3}

    def test_an_entity_with_a_pending_event_is_not_forgotten(self, redis, alerting, monkeypatch):
        """With room for 1 entity: a template whose PAUSED awaits its notification keeps its
        state when a newer template's event comes; its rerun is "done"."""
        monkeypatch.setattr(tracker, "MAX_ENTITIES", 1)
        settings, rules = alerting
        paused = template("1", "PAUSED", T0)
        tracker.process(redis, [paused], rules, settings)
        tracker.process(redis, [template("2", "APPROVED", T0 + 1)], rules, settings)
        assert redis.exists(tracker.STATE_PREFIX + "template:1")
        assert tracker.take(redis, paused, rules, settings, time.time()) == "done"
