"""The health state kept in Redis: bounded, and what an alert compares against."""

from __future__ import annotations

import time

from webhook.health_payload import normalize
from workers.health import tracker
from workers.routing.rules import load_rules
from workers.settings import read

SETTINGS = read({})


def template_event(template_id: str, value: str, now: float) -> dict:
    loaded = {
        "event": value,
        "message_template_id": template_id,
        "message_template_name": f"t{template_id}",
        "message_template_language": "ja",
    }
    event = normalize("message_template_status_update", loaded, "1000", now)
    event |= {"event_id": f"ev-{template_id}-{value}", "timestamp": int(now)}
    return event


class TestStateBounds:
    def test_the_least_recently_changed_entities_are_forgotten(self, redis, monkeypatch):
        """Beyond MAX_ENTITIES, the oldest entity states are deleted with their index entry."""
        monkeypatch.setattr(tracker, "MAX_ENTITIES", 2)
        rules = load_rules(None, SETTINGS)
        now = time.time()
        for offset, template_id in enumerate(("1", "2", "3")):
            event = template_event(template_id, "APPROVED", now + offset)
            tracker.process(redis, [event], rules, SETTINGS, now + offset)
        assert [item["key"] for item in tracker.entities(redis)] == ["template:3", "template:2"]
        assert not redis.exists(tracker.STATE_PREFIX + "template:1")
        assert 0 < redis.ttl(tracker.STATE_PREFIX + "template:3") <= tracker.STATE_SECONDS

    def test_a_problem_is_compared_with_the_kept_state(self, redis):
        """PAUSED after APPROVED: previous status APPROVED, from the state wastatus kept."""
        rules = load_rules(None, SETTINGS)
        now = time.time()
        tracker.process(redis, [template_event("7", "APPROVED", now)], rules, SETTINGS, now)
        dropped = tracker.process(redis, [template_event("7", "PAUSED", now + 1)], rules,
                                 SETTINGS, now + 1)  # fmt: skip
        assert dropped == []
        [problem] = tracker.open_problems(redis)
        assert (problem["event"], problem["severity"]) == ("PAUSED", "error")
        [item] = tracker.entities(redis)
        assert item["state"]["status"] == "PAUSED"

    def test_events_of_one_batch_are_taken_in_metas_order(self, redis):
        """REINSTATED sent after PAUSED but listed first still resolves it, not the reverse."""
        rules = load_rules(None, SETTINGS)
        now = time.time()
        paused = template_event("8", "PAUSED", now)
        back = template_event("8", "REINSTATED", now + 5)
        dropped = tracker.process(redis, [back, paused], rules, SETTINGS, now + 5)
        assert dropped == []  # the recovery resolved the problem: it is in the resolved notice
        assert tracker.open_problems(redis) == []
