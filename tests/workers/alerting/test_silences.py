"""Silences: stored in Redis or declared in the rules file; matching events counted, not sent."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from tests.workers.alerting import drive, drive_for, enriched, route
from workers.alerting import groups, silences
from workers.outcomes import ledger
from workers.settings import read


@pytest.fixture
def hook(receiver, monkeypatch):
    monkeypatch.setenv("WASTATUS_ALERT_WEBHOOK_URL", receiver.url + "/alerts")
    for name in ("WASTATUS_ALERT_URLS", "WASTATUS_RULES"):
        monkeypatch.delenv(name, raising=False)
    return receiver


class TestStore:
    def test_add_normalizes_matchers_like_routes(self, redis):
        """A code given as text is stored as the number routes match on."""
        silence = silences.add(redis, {"code": "131049", "api": "cloud"}, time.time() + 60)
        assert silence["matchers"] == {"code": [131049], "api": ["cloud"]}
        assert [s["id"] for s in silences.active(redis, settings=read({}))] == [silence["id"]]

    def test_unknown_matcher_key_is_refused(self, redis):
        """A matcher key routes do not know is refused with the allowed keys."""
        with pytest.raises(silences.SilenceError, match="unknown matcher"):
            silences.add(redis, {"colour": "red"}, time.time() + 60)

    def test_silence_without_matchers_is_refused(self, redis):
        """A silence must match something: an empty matcher set would silence everything."""
        with pytest.raises(silences.SilenceError, match="at least one matcher"):
            silences.add(redis, {}, time.time() + 60)

    def test_end_in_the_past_is_refused(self, redis):
        """A silence that would already be over is refused."""
        with pytest.raises(silences.SilenceError, match="already be over"):
            silences.add(redis, {"code": 131049}, time.time() - 1)

    def test_expire_ends_a_silence_now(self, redis):
        """An expired silence is no longer active but is still listed among stored ones."""
        silence = silences.add(redis, {"code": 131049}, time.time() + 3600)
        assert silences.expire(redis, silence["id"]) is True
        assert silences.active(redis, settings=read({})) == []
        [kept] = silences.stored(redis)
        assert kept["active"] is False
        assert silences.expire(redis, "nope") is False


class TestSilencing:
    def test_silenced_events_are_counted_and_not_sent(self, redis, hook):
        """Events matching a silence are counted, recorded as silenced, and never sent."""
        silence = silences.add(redis, {"code": 131049}, time.time() + 3600, comment="known")
        quiet = enriched(131049, 30)
        loud = enriched(131026, 2)
        groups.submit(redis, quiet + loud, route())
        drive(redis, lambda: len(hook.requests) >= 1)
        drive_for(redis, 1.2)
        assert [request.json()["alerts"][0]["code"] for request in hook.requests] == [131026]
        [active] = silences.active(redis, settings=read({}))
        assert (active["id"], active["silenced"]) == (silence["id"], 30)
        outcomes = ledger.outcomes_of(redis, [event["event_id"] for event in quiet])
        assert set(outcomes.values()) == {"silenced"}

    def test_a_batch_of_only_silenced_events_is_recorded(self, redis, hook):
        """A batch whose every event is silenced still writes its ledger entries and counts."""
        silences.add(redis, {"code": 131049}, time.time() + 3600)
        quiet = enriched(131049, 4)
        groups.submit(redis, quiet, route())
        outcomes = ledger.outcomes_of(redis, [event["event_id"] for event in quiet])
        assert set(outcomes.values()) == {"silenced"}
        assert silences.active(redis, settings=read({}))[0]["silenced"] == 4

    def test_expired_silence_lets_events_through(self, redis, hook):
        """Once a silence expires, the events it matched alert again."""
        silence = silences.add(redis, {"code": 131049}, time.time() + 3600)
        groups.submit(redis, enriched(131049, 2), route())
        silences.expire(redis, silence["id"])
        groups.submit(redis, enriched(131049, 3), route())
        drive(redis, lambda: len(hook.requests) >= 1)
        assert hook.requests[0].json()["count"] == 3

    def test_recipient_prefix_and_phone_number_matchers(self, redis, hook):
        """A silence on a country prefix and one number leaves other numbers and countries."""
        silences.add(redis, {"recipient_prefix": "81", "phone_number_id": "111"},
                     time.time() + 3600)  # fmt: skip
        groups.submit(redis, enriched(131049, 2, phone_number_id="111"), route())
        groups.submit(redis, enriched(131049, 3, phone_number_id="111", recipient_id="4477"),
                      route())  # fmt: skip
        groups.submit(redis, enriched(131049, 4, phone_number_id="222"), route())
        drive(redis, lambda: len(hook.requests) >= 2)
        assert sorted(r.json()["count"] for r in hook.requests) == [3, 4]

    def test_rules_file_silences_apply(self, redis, hook, monkeypatch, tmp_path):
        """A silence declared in the rules file silences matching events until its end."""
        until = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
        path = tmp_path / "rules.yaml"
        path.write_text(json.dumps({"silences": [
            {"matchers": {"code": 131049}, "until": until, "comment": "campaign"},
            {"matchers": {"code": 131026}, "until": "2000-01-01T00:00:00+00:00"},
        ]}))  # fmt: skip
        monkeypatch.setenv("WASTATUS_RULES", str(path))
        [active] = silences.active(redis)
        assert active["comment"] == "campaign"
        assert active["source"] == "rules"
        groups.submit(redis, enriched(131049, 5) + enriched(131026, 1), route())
        drive(redis, lambda: len(hook.requests) >= 1)
        drive_for(redis, 1.2)
        assert [r.json()["alerts"][0]["code"] for r in hook.requests] == [131026]
        assert silences.active(redis)[0]["silenced"] == 5
