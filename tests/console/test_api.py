"""The JSON API under /api/v1, on a real Redis with real worker passes."""

from __future__ import annotations

import time

from tests.conftest import ONPREM_TOKEN
from tests.console.conftest import TOKEN, fail
from workers.outcomes import deadletters

BEARER = {"Authorization": f"Bearer {TOKEN}"}


class TestGroups:
    """Groups are listed with counts, and one group's events come newest first, paged."""

    def test_list_and_one_paged(self, anonymous, redis):
        fail(anonymous, redis, n=15)
        [group] = anonymous.get("/api/v1/groups", headers=BEARER).json["groups"]
        assert group["count"] == 15
        first = anonymous.get(f"/api/v1/groups/{group['id']}?size=10", headers=BEARER).json
        second = anonymous.get(f"/api/v1/groups/{group['id']}?page=2&size=10", headers=BEARER).json
        assert (first["pages"], len(first["events"]), len(second["events"])) == (2, 10, 5)
        assert first["catalog"]["code"] == 131049
        assert first["silence_matchers"] == {"code": 131049}
        ids = [event["message_id"] for event in first["events"] + second["events"]]
        assert len(set(ids)) == 15
        assert [event["seq"] for event in first["events"] + second["events"]] == list(
            range(15, 0, -1)
        )

    def test_unknown_group(self, anonymous):
        reply = anonymous.get("/api/v1/groups/nope", headers=BEARER)
        assert reply.status_code == 404 and reply.json["error"] == "group-unknown"


class TestSilences:
    """A silence previews how many open events it matches; created, it counts what follows."""

    def test_preview_create_expire(self, anonymous, redis):
        fail(anonymous, redis, code=131049, n=3)
        fail(anonymous, redis, code=131026, n=2)
        preview = anonymous.post(
            "/api/v1/silences/preview", headers=BEARER, json={"matchers": {"code": 131049}}
        ).json
        assert preview["events"] == 3 and len(preview["groups"]) == 1
        created = anonymous.post(
            "/api/v1/silences",
            headers=BEARER,
            json={"matchers": {"code": 131049}, "duration": "1h", "comment": "known"},
        ).json
        assert created["preview"]["events"] == 3
        sid = created["silence"]["id"]
        assert created["silence"]["created_by"] == "token"
        fail(anonymous, redis, code=131049, n=2)
        [listed] = anonymous.get("/api/v1/silences", headers=BEARER).json["silences"]
        assert listed["silenced"] == 2 and listed["active"]
        expired = anonymous.post(f"/api/v1/silences/{sid}/expire", headers=BEARER)
        assert expired.status_code == 200
        [listed] = anonymous.get("/api/v1/silences", headers=BEARER).json["silences"]
        assert not listed["active"]

    def test_bad_silences(self, anonymous):
        for body in (
            {"matchers": {}},
            {"matchers": {"colour": "red"}},
            {"matchers": {"code": 1}, "duration": "soon"},
            {"matchers": "code=1"},
        ):
            reply = anonymous.post("/api/v1/silences", headers=BEARER, json=body)
            assert reply.status_code == 400 and reply.json["error"] == "silence-invalid", body

    def test_unknown_silence(self, anonymous):
        reply = anonymous.post("/api/v1/silences/nope/expire", headers=BEARER)
        assert reply.status_code == 404


class TestDeadLetters:
    """Dead letters are listed and replayed one at a time, or all with the count confirmed."""

    def test_replay_one_and_all(self, anonymous, redis):
        ids = [
            deadletters.put(
                redis,
                "event",
                {"event_id": f"e{i}", "code": 131000, "received_at": time.time()},
                "poison",
            )
            for i in range(3)
        ]
        listed = anonymous.get("/api/v1/dead-letters", headers=BEARER).json["dead_letters"]
        assert sorted(entry["id"] for entry in listed) == sorted(ids)
        one = anonymous.post(f"/api/v1/dead-letters/{ids[0]}/replay", headers=BEARER)
        assert one.json["replayed"][0]["requeued"] == "inbox"
        wrong = anonymous.post("/api/v1/dead-letters/replay", headers=BEARER, json={"count": 5})
        assert wrong.status_code == 409 and wrong.json["count"] == 2
        assert deadletters.count(redis) == 2
        done = anonymous.post("/api/v1/dead-letters/replay", headers=BEARER, json={"count": 2})
        assert len(done.json["replayed"]) == 2 and deadletters.count(redis) == 0
        again = anonymous.post(f"/api/v1/dead-letters/{ids[0]}/replay", headers=BEARER)
        assert again.status_code == 404


class TestQuarantine:
    """Quarantined webhooks are listed, shown, and replayed (still invalid: kept)."""

    def test_list_show_replay(self, anonymous, redis):
        anonymous.post(
            "/webhook", data=b"not json", headers={"Authorization": f"Bearer {ONPREM_TOKEN}"}
        )
        [entry] = anonymous.get("/api/v1/quarantine", headers=BEARER).json["quarantine"]
        shown = anonymous.get(f"/api/v1/quarantine/{entry['id']}", headers=BEARER).json
        assert shown["body"] == "not json"
        reply = anonymous.post(f"/api/v1/quarantine/{entry['id']}/replay", headers=BEARER)
        assert reply.json["replayed"][0]["replayed"] is False
        assert anonymous.get("/api/v1/quarantine/0-0", headers=BEARER).status_code == 404
        assert anonymous.get("/api/v1/quarantine/junk", headers=BEARER).status_code == 404
        wrong = anonymous.post("/api/v1/quarantine/replay", headers=BEARER, json={})
        assert wrong.status_code == 409 and wrong.json["count"] == 1


class TestReads:
    """Overview, health and catalog search answer."""

    def test_overview_health_catalog(self, anonymous, redis):
        fail(anonymous, redis)
        overview = anonymous.get("/api/v1/overview", headers=BEARER).json
        hours = overview["chart"]["hours"]
        assert len(hours) == 12 and hours[-1]["by_category"] == {"policy": 1}
        assert "open_problems" in anonymous.get("/api/v1/health", headers=BEARER).json
        by_code = anonymous.get("/api/v1/catalog?q=131049", headers=BEARER).json["entries"]
        assert {entry["code"] for entry in by_code} == {131049}
        by_words = anonymous.get("/api/v1/catalog?q=rate+limit", headers=BEARER).json["entries"]
        assert by_words and all("rate" in str(entry).lower() for entry in by_words)
