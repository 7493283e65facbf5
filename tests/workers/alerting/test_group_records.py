"""What an open group keeps for its console page: its notifications' ids and its events."""

from __future__ import annotations

import json

from bench._receiver import Reply
from tests.workers.alerting import drive, enriched, route
from workers.alerting import groups, notifications
from workers.outcomes import deadletters
from workers.replay import replay
from workers.settings import read

LONE_ROUTE = {"receivers": ("ops",)}


def alerting_to(monkeypatch, receiver, attempts: int = 1) -> None:
    monkeypatch.setenv("WASTATUS_ALERT_WEBHOOK_URL", receiver.url + "/hook")
    monkeypatch.setenv("WASTATUS_ALERT_ATTEMPTS", str(attempts))
    for name in ("WASTATUS_RULES", "WASTATUS_ALERT_URLS", "WASTATUS_ALERTMANAGER_URL"):
        monkeypatch.delenv(name, raising=False)


def gid_of(events: list[dict], alert_route) -> str:
    return groups.group_id(groups.group_label(events[0], alert_route))


class TestNotificationIndex:
    """Each notification of an open group is in its index, newest first, by the one writer."""

    def test_flushes_and_a_replay_are_indexed_newest_first(self, redis, receiver, monkeypatch):
        """A dead firing, then a delivered update, then the firing's replay: three ids, newest
        first, each naming its record; the replay (written by `redeliver`) too."""
        alerting_to(monkeypatch, receiver)
        receiver.default = Reply(500)
        alert_route = route()
        first = enriched(131049, 2)
        gid = gid_of(first, alert_route)
        groups.submit(redis, first, alert_route)
        drive(redis, lambda: deadletters.count(redis) == 1)
        receiver.default = Reply(200)
        groups.submit(redis, enriched(131049, 1), alert_route)
        drive(redis, lambda: len(notifications.of_group(redis, gid)) == 2
              and notifications.of_group(redis, gid)[0][1]["state"] == "delivered")  # fmt: skip
        (dead,) = deadletters.entries(redis)
        replay(redis, dead.id)
        drive(redis, lambda: notifications.of_group(redis, gid)[0][1]["state"] == "delivered")
        found = notifications.of_group(redis, gid)
        assert [record["status"] for _, record in found] == ["firing", "update", "firing"]
        assert [record["state"] for _, record in found] == ["delivered", "delivered", "dead"]
        assert found[0][1]["replay_of"] == found[2][0]
        assert [record["gid"] for _, record in found] == [gid] * 3

    def test_the_index_is_capped(self, redis):
        """Past NOTIFICATIONS_KEPT records the index keeps the newest ids only."""
        kept = notifications.NOTIFICATIONS_KEPT
        key = notifications.index_key("g1")
        redis.hset(groups.group_hash("g1"), "count", 1)
        script = redis.register_script(notifications.RECORD_LUA + """
open_record(KEYS[1], KEYS[2], ARGV[1], 1, {}, 2, KEYS[3], KEYS[4])
""")  # fmt: skip
        for n in range(kept + 5):
            keys = [notifications.record_key(f"n{n}"), notifications.OUTBOX,
                    groups.group_hash("g1"), key]  # fmt: skip
            script(keys=keys, args=[f"n{n}", "state", "pending"])
        listed = [raw.decode() for raw in redis.lrange(key, 0, -1)]
        assert listed == [f"n{n}" for n in range(kept + 4, 4, -1)]

    def test_no_index_for_a_closed_group(self, redis):
        """A replay of a notification whose group has closed writes no index for it."""
        item = {"notification_id": "old", "state": {
            "gid": "gone", "group_key": "k", "status": "firing", "count": "1", "events": "1",
            "first_seen": "1", "last_seen": "1", "meta": json.dumps({"receivers": []})},
            "alert": {"alerts": []}}  # fmt: skip
        nid = notifications.redeliver(redis, item)
        assert notifications.get(redis, nid)["replay_of"] == "old"
        assert not redis.exists(notifications.index_key("gone"))


class TestGroupEvents:
    """A group lists its events compactly, newest first, capped, and they go when it closes."""

    def test_events_beyond_the_sample_newest_first_capped(self, redis, monkeypatch):
        """45 events with room for 30: the latest 30 listed, numbered 45 down to 16."""
        monkeypatch.setenv("WASTATUS_GROUP_EVENTS", "30")
        alert_route = route(group_wait=3600.0)
        events = enriched(131026, 45, recipient_id="819012340000")
        gid = gid_of(events, alert_route)
        for start in range(0, 45, 15):
            groups.submit(redis, events[start : start + 15], alert_route)
        page = groups.events(redis, gid, 100)
        assert (page["total"], page["kept"]) == (45, 30)
        assert [e["message_id"] for e in page["events"]] == [
            e["message_id"] for e in reversed(events[15:])
        ]
        assert [e["seq"] for e in page["events"]] == list(range(45, 15, -1))
        first = page["events"][0]
        assert first["recipient_id"] == "********0000"  # masked, as the alert item is
        assert (first["code"], first["phone_number_id"]) == (131026, "106540352242922")
        assert first["timestamp"] == events[-1]["timestamp"]

    def test_an_event_submitted_twice_is_listed_once(self, redis):
        """A redelivered batch adds nothing: listed as counted, once."""
        alert_route = route(group_wait=3600.0)
        events = enriched(131026, 3)
        gid = gid_of(events, alert_route)
        groups.submit(redis, events, alert_route)
        groups.submit(redis, events, alert_route)
        assert groups.events(redis, gid, 10)["kept"] == 3

    def test_before_pages_from_a_fixed_point(self, redis):
        """`before` continues below the last event shown even when new ones arrived since."""
        alert_route = route(group_wait=3600.0)
        events = enriched(131026, 12)
        gid = gid_of(events, alert_route)
        groups.submit(redis, events, alert_route)
        first = groups.events(redis, gid, 5)["events"]
        groups.submit(redis, enriched(131026, 4), alert_route)
        older = groups.events(redis, gid, 5, before=first[-1]["seq"])["events"]
        assert [e["seq"] for e in first + older] == list(range(12, 2, -1))
        assert older[0]["message_id"] == events[6]["message_id"]

    def test_with_log_pii_the_recipient_is_whole(self, redis):
        alert_route = route(group_wait=3600.0)
        events = enriched(131026, 1, recipient_id="819012345678")
        groups.submit(redis, events, alert_route, settings=read({"WASTATUS_LOG_PII": "1"}))
        page = groups.events(redis, gid_of(events, alert_route), 5)
        assert page["events"][0]["recipient_id"] == "819012345678"

    def test_a_health_event_names_its_event_and_entity(self, redis):
        event = {"event_id": "h1", "kind": "health", "field": "account_update",
                 "event": "ACCOUNT_RESTRICTION", "entity": "waba:1", "timestamp": 1700000000,
                 "catalog": {"title": "restricted"}}  # fmt: skip
        entry = json.loads(groups.event_entry(event))
        assert dict(zip(groups.EVENT_FIELDS, entry, strict=False)) == {
            "message_id": None, "recipient_id": None, "code": None, "timestamp": 1700000000,
            "phone_number_id": None, "event": "ACCOUNT_RESTRICTION", "entity": "waba:1",
        }  # fmt: skip

    def test_events_and_index_go_when_the_group_closes(self, redis, receiver, monkeypatch):
        """A group closed by its recovery, and one closed for quiet, leave neither list."""
        alerting_to(monkeypatch, receiver)
        monkeypatch.setenv("WASTATUS_GROUP_RESOLVE", "1s")
        alert_route = route(group_wait=0.0)
        quiet = enriched(131026, 2)
        gid = gid_of(quiet, alert_route)
        groups.submit(redis, quiet, alert_route)
        drive(redis, lambda: redis.llen(notifications.index_key(gid)) == 1)
        assert redis.llen(groups.events_key(gid)) == 2
        drive(redis, lambda: not redis.exists(groups.group_hash(gid)), timeout=20)
        assert not redis.exists(groups.events_key(gid), notifications.index_key(gid))

        recovered = enriched(131049, 2)
        other = gid_of(recovered, alert_route)
        groups.submit(redis, recovered, alert_route)
        drive(redis, lambda: redis.llen(notifications.index_key(other)) == 1)
        assert groups.close(redis, other, enriched(131049, 1)[0], 1700000100.0)
        assert not redis.exists(groups.events_key(other), notifications.index_key(other))

    def test_a_thousand_cloud_events_hold_under_100_kb(self, redis):
        """The default 1,000 kept events with Cloud API wamids cost under 100 bytes each (88 when
        measured: the code and phone number id are kept once, in the group's labels)."""
        alert_route = route(group_wait=3600.0)
        events = enriched(131049, 1200)
        for n, event in enumerate(events):
            event["message_id"] = f"wamid.HBgLODE5MDEyMzQ1Njc4FQIAERgS{n:024X}"
        gid = gid_of(events, alert_route)
        groups.submit(redis, events, alert_route, settings=read({}))
        assert redis.llen(groups.events_key(gid)) == 1000
        assert redis.memory_usage(groups.events_key(gid)) < 100_000
