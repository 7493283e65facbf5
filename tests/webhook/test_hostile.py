"""Signed but hostile input against the real endpoint, Redis and workers: no poison, no 500."""

from __future__ import annotations

import json
import time

import pytest
from rq.registry import FailedJobRegistry

from tests.conftest import APP_SECRET, ONPREM_TOKEN, app_env, drive, drive_for
from webhook import create_app
from webhook.signature import sign
from workers import queues
from workers.inbox import intake
from workers.outcomes import deadletters, ledger

SURROGATE_MESSAGE = (
    b'{"statuses":[{"id":"wamid.POISON","recipient_id":"819011112222","status":"failed",'
    b'"timestamp":"1700000000","errors":[{"code":131026,"message":"bad \\ud800 text"}]}]}'
)


def failed_status(message_id: str, **fields: object) -> dict:
    status = {
        "id": message_id,
        "recipient_id": "819022223333",
        "status": "failed",
        "timestamp": "1700000000",
        "errors": [{"code": 131026, "title": "t"}],
    }
    return status | fields


def onprem(*statuses: dict) -> bytes:
    return json.dumps({"statuses": list(statuses)}).encode()


@pytest.fixture
def alerting_env(monkeypatch, redis_url):
    """The worker side as a deployment runs it: default rules, the log receiver, no wait."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("WASTATUS_GROUP_WAIT", "0")
    for name in (
        "WASTATUS_RULES",
        "WASTATUS_RETRY_URL",
        "WASTATUS_ALERT_WEBHOOK_URL",
        "WASTATUS_ALERT_URLS",
    ):
        monkeypatch.delenv(name, raising=False)


def failed_jobs(redis) -> int:
    return sum(FailedJobRegistry(queue=queues.get_queue(redis, name)).count for name in queues.ALL)


def stored_events(redis) -> list[dict]:
    return [json.loads(raw) for raw in redis.lrange(intake.INBOX, 0, -1)]


class TestPoisonEvent:
    """A lone surrogate in a failure's text is stored as valid UTF-8 and alerted like any other."""

    def test_lone_surrogate_is_stored_as_a_replacement_character(self, redis, post):
        """The stored event is valid UTF-8 everywhere: the surrogate became U+FFFD."""
        reply = post.with_token(SURROGATE_MESSAGE)
        assert reply.status_code == 200 and reply.json["stored"] == 1
        raw = redis.lindex(intake.INBOX, 0)
        raw.decode("utf-8")  # strict: no escaped surrogate hides in it either
        assert b"\\ud800" not in raw.lower()
        (event,) = stored_events(redis)
        assert event["errors"][0]["message"] == "bad \ufffd text"
        json.dumps(event, ensure_ascii=False).encode("utf-8")

    def test_failure_after_a_surrogate_is_alerted_and_nothing_fails(
        self, redis, post, alerting_env
    ):
        """Both the surrogate failure and the one stored after it are alerted; no job fails."""
        assert post.with_token(SURROGATE_MESSAGE).status_code == 200
        assert post.with_token(onprem(failed_status("wamid.AFTER"))).status_code == 200
        drive(redis, lambda: ledger.summary(redis)["outcomes"]["alerted"] == 2)
        assert failed_jobs(redis) == 0
        assert redis.llen(intake.INBOX) == 0


class TestUnprocessableEvent:
    """An event that still crashes the drain is buried once, readably, and others go on."""

    def test_crashing_event_with_surrogates_is_buried_once_and_stops(
        self, redis, alerting_env, monkeypatch
    ):
        """A stored item with escaped surrogates whose processing crashes becomes one dead
        letter that can be read back; the failure beside it is alerted; the crashes stop."""
        monkeypatch.setenv("WASTATUS_DRAIN_MAX_DELIVERIES", "2")
        good = {
            "kind": "status",
            "api": "on_premises",
            "message_id": "wamid.GOOD",
            "recipient_id": "819033334444",
            "status": "failed",
            "timestamp": 1700000000,
            "errors": [{"code": 131026, "title": "t"}],
            "received_at": time.time(),
        }
        good["event_id"] = intake.event_id(good)
        # Written by an older version, or by hand: escaped surrogates, a code that crashes.
        poison = (
            b'{"event_id":"poison\\udc80","kind":"status","message_id":"wamid.\\ud800",'
            b'"errors":[{"code":{"not":"hashable"},"message":"x\\udfff"}],"received_at":1}'
        )
        redis.lpush(intake.INBOX, poison, json.dumps(good))
        intake.schedule_drain(redis)
        drive(redis, lambda: deadletters.count(redis) == 1 and not redis.llen(intake.INBOX))
        drive(redis, lambda: ledger.outcomes_of(redis, [good["event_id"]])[good["event_id"]])
        (dead,) = deadletters.entries(redis, "event")
        assert "\ufffd" in json.dumps(dead.item, ensure_ascii=False)
        failures = failed_jobs(redis)
        assert failures <= 2
        drive_for(redis, 1.0)
        assert failed_jobs(redis) == failures and deadletters.count(redis) == 1

    def test_unparseable_item_is_buried(self, redis, alerting_env, monkeypatch):
        """Bytes that are not JSON at all become a dead letter holding them as text."""
        monkeypatch.setenv("WASTATUS_DRAIN_MAX_DELIVERIES", "1")
        redis.lpush(intake.INBOX, b"\xff\xfe{not json")
        intake.schedule_drain(redis)
        drive(redis, lambda: deadletters.count(redis) == 1)
        (dead,) = deadletters.entries(redis, "event")
        assert dead.item["event"]["raw"].endswith("{not json")


class TestStuckDrain:
    """`/readyz` and `/metrics` tell when the oldest inbox event has waited too long."""

    def test_readyz_fails_when_the_oldest_event_is_too_old(self, redis, client, monkeypatch):
        """An event waiting longer than WASTATUS_READY_MAX_INBOX_AGE makes /readyz a 503."""
        monkeypatch.setenv("WASTATUS_READY_MAX_INBOX_AGE", "5m")
        assert client.get("/readyz").status_code == 200
        old = {"event_id": "old", "received_at": time.time() - 3600}
        redis.lpush(intake.INBOX, json.dumps(old), json.dumps({"received_at": time.time()}))
        reply = client.get("/readyz")
        assert reply.status_code == 503
        assert reply.json["error"] == "drain-stuck"
        assert 3590 < reply.json["oldest_event_age"] < 3700

    def test_metrics_show_the_oldest_event_age(self, redis, client):
        """`wastatus_inbox_oldest_event_age_seconds` is the oldest waiting event's age."""
        redis.lpush(intake.INBOX, json.dumps({"received_at": time.time() - 120}))
        text = client.get("/metrics").get_data(as_text=True)
        line = next(
            line
            for line in text.splitlines()
            if line.startswith("wastatus_inbox_oldest_event_age_seconds ")
        )
        assert 115 < float(line.split()[1]) < 200


def deep(depth: int) -> bytes:
    """JSON of an object nested `depth` levels deep (too deep for `json` to read back)."""
    return b'{"a":' * depth + b"1" + b"}" * depth


class TestNoServerError:
    """Signed shapes that once made a 500 are answered 200 and their valid neighbours kept."""

    @pytest.mark.parametrize("field", ["id", "recipient_id", "recipient_participant_id"])
    def test_lone_surrogate_in_an_id_is_stored(self, redis, post, field):
        """A lone surrogate in an id field: 200, and the valid status beside it is stored."""
        bad = failed_status("wamid.BAD") | {field: "@@HERE@@"}
        raw = onprem(bad, failed_status("wamid.OK")).replace(b"@@HERE@@", b"\\udc00x")
        reply = post.with_token(raw)
        assert reply.status_code == 200, reply.get_data(as_text=True)
        assert reply.json["stored"] == 2
        ids = sorted(event["message_id"] for event in stored_events(redis))
        assert "wamid.OK" in ids

    @pytest.mark.parametrize("depth", [250, 256, 990, 1000, 1023, 1024, 1100])
    def test_deep_conversation_is_not_a_500(self, redis, post, depth):
        """A conversation nested around orjson's, json's and Python's limits: 200 either way,
        and the valid status beside it is stored."""
        body = (
            b'{"statuses":[{"id":"wamid.DEEP","status":"failed","timestamp":"1700000000",'
            b'"errors":[{"code":131026}],"conversation":'
            + deep(depth)
            + b'},{"id":"wamid.OK","status":"failed","timestamp":"1700000000",'
            b'"errors":[{"code":131026}]}]}'
        )
        reply = post.with_token(body)
        assert reply.status_code == 200, reply.get_data(as_text=True)
        assert reply.json["stored"] >= 1 or reply.json["quarantined"]
        for event in stored_events(redis):
            fastjson_depth = json.dumps(event)  # re-encodes without RecursionError
            assert fastjson_depth

    def test_deep_json_in_a_signed_cloud_body(self, redis, client):
        """The same depth in a Cloud API body signed with the app secret."""
        value = {"statuses": [failed_status("wamid.C") | {"conversation": "@@DEEP@@"}]}
        change = {"field": "messages", "value": value}
        body = json.dumps(
            {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}
        ).encode()
        body = body.replace(b'"@@DEEP@@"', deep(995))
        signature = {"X-Hub-Signature-256": sign(body, APP_SECRET)}
        reply = client.post("/webhook", data=body, headers=signature)
        assert reply.status_code == 200, reply.get_data(as_text=True)
        assert reply.json["stored"] == 1


class TestTextBounds:
    """Free-text fields are capped with a marker, so one event cannot hold megabytes."""

    def test_long_details_are_cut_with_a_marker(self, redis, post):
        """100 KB of `details` is stored cut, with a marker saying how much was left out."""
        status = failed_status(
            "wamid.LONG",
            errors=[
                {
                    "code": 131026,
                    "title": "T" * 50_000,
                    "message": "M" * 50_000,
                    "error_data": {"details": "D" * 100_000},
                }
            ],
        )
        assert post.with_token(onprem(status)).status_code == 200
        raw = redis.lindex(intake.INBOX, 0)
        assert len(raw) < 8_000
        error = json.loads(raw)["errors"][0]
        assert error["details"].startswith("DDD") and "cut" in error["details"]
        assert error["title"].startswith("TTT") and error["message"].startswith("MMM")


class TestLesserItems:
    """Size refusals leave no log line; a header that proves nothing falls back to ?token=."""

    def test_too_large_writes_no_request_line(self, redis, redis_url, capfd):
        """A 413 is counted, not logged: an unauthenticated flood of big bodies fills no log."""
        app = create_app(app_env(redis_url, WASTATUS_MAX_BODY="1024"))
        capfd.readouterr()
        reply = app.test_client().post("/webhook", data=b"x" * 5000)
        assert reply.status_code == 413
        assert "http.request" not in capfd.readouterr().err

    def test_wrong_bearer_falls_back_to_the_query_token(self, redis, client):
        """A wrong Authorization header does not hide a good `?token=`."""
        reply = client.post(
            f"/webhook?token={ONPREM_TOKEN}",
            data=onprem(failed_status("wamid.TOKEN")),
            headers={"Authorization": "Bearer wrong"},
        )
        assert reply.status_code == 200
