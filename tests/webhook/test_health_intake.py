"""Health fields at the endpoint: validated, normalized, stored before the 200 like failures."""

from __future__ import annotations

import json

import pytest

from tests.conftest import APP_SECRET, app_env, load_fixture
from webhook import create_app
from webhook.health_payload import expiration
from webhook.signature import sign
from workers.inbox import intake

WABA = "102290129340398"

TID, NUMBER = "1689556908129832", "15550783881"
STATUS, QUALITY = "message_template_status_update", "message_template_quality_update"
CATEGORY, PIN = "template_category_update", "PIN_RESET_REQUEST"
NQ, NEED_INFO = "phone_number_quality_update", "INCREASED_CAPABILITIES_ELIGIBILITY_NEED_MORE_INFO"

# fixture: (field, event, entity type, entity id, current)
EXPECTED = {
    "cloud/health_template_paused.json":
        (STATUS, "PAUSED", "template", TID, {"status": "PAUSED", "category": "UTILITY"}),
    "cloud/health_template_disabled.json":
        (STATUS, "DISABLED", "template", TID, {"status": "DISABLED", "category": "UTILITY"}),
    "cloud/health_template_rejected.json":
        (STATUS, "REJECTED", "template", TID, {"status": "REJECTED", "category": "MARKETING"}),
    "cloud/health_template_quality_yellow.json":
        (QUALITY, "YELLOW", "template", TID, {"quality": "YELLOW"}),
    "cloud/health_template_category_scheduled.json":
        (CATEGORY, "RECATEGORIZATION_SCHEDULED", "template", TID, {"category": "UTILITY"}),
    "cloud/health_number_flagged.json":
        (NQ, "FLAGGED", "phone_number", NUMBER, {"tier": "TIER_10K", "flag": "FLAGGED"}),
    "cloud/health_number_downgrade.json":
        (NQ, "DOWNGRADE", "phone_number", NUMBER, {"tier": "TIER_1K"}),
    "cloud/health_account_disabled.json":
        ("account_update", "DISABLE", "waba", WABA, {"ban": "DISABLE"}),
    "cloud/health_account_violation.json":
        ("account_update", "ACCOUNT_VIOLATION", "waba", WABA, {"violation": "SCAM"}),
    "cloud/health_security_pin_reset.json":
        ("security", PIN, "phone_number", NUMBER, {"security": PIN}),
    "cloud/health_name_rejected.json":
        ("phone_number_name_update", "REJECTED", "phone_number", NUMBER, {"decision": "REJECTED"}),
    "cloud/health_account_alert.json":
        ("account_alerts", NEED_INFO, "waba", WABA, {"alert": NEED_INFO}),
    "cloud/health_account_review_rejected.json":
        ("account_review_update", "REJECTED", "waba", WABA, {"decision": "REJECTED"}),
}  # fmt: skip


def inbox(redis) -> list[dict]:
    return [json.loads(item) for item in reversed(redis.lrange(intake.INBOX, 0, -1))]


class TestHealthIntake:
    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_each_field_becomes_one_normalized_health_event(self, post, redis, name):
        """A change of a health field is stored as one event naming field, event and entity."""
        reply = post.fixture(name)
        assert reply.status_code == 200 and reply.json["stored"] == 1
        [event] = inbox(redis)
        field, value, entity_type, entity_id, current = EXPECTED[name]
        assert (event["kind"], event["field"], event["event"]) == ("health", field, value)
        assert (event["entity"]["type"], event["entity"]["id"]) == (entity_type, entity_id)
        assert event["current"] == current
        assert event["waba_id"] == WABA and event["timestamp"] == 1764400000

    def test_a_redelivered_change_is_a_duplicate(self, post, redis):
        """Meta's retry of the same change stores nothing new."""
        post.fixture("cloud/health_template_paused.json")
        again = post.fixture("cloud/health_template_paused.json")
        assert again.json == {"ok": True, "stored": 0, "duplicates": 1}
        assert redis.llen(intake.INBOX) == 1

    def test_template_details_and_names_are_kept(self, post, redis):
        """A paused template keeps its name, language and Meta's other_info."""
        post.fixture("cloud/health_template_paused.json")
        [event] = inbox(redis)
        assert (event["template_name"], event["template_language"]) == ("order_update", "ja")
        assert event["details"]["other_info"]["title"] == "FIRST_PAUSE"

    def test_a_restriction_keeps_each_type_and_its_end_in_unix_seconds(self, post, redis):
        """Restriction ends in Unix seconds or ISO time both become Unix seconds."""
        post.fixture("cloud/health_account_restriction.json")
        [event] = inbox(redis)
        assert event["current"]["restrictions"] == [
            {"type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": 1830000000.0},
            {"type": "RESTRICTED_ADD_PHONE_NUMBER_ACTION", "expiration": 1830000000.0},
        ]
        assert expiration("soon") is None and expiration(True) is None
        assert expiration(float("nan")) is None and expiration(10**30) is None
        assert expiration("9" * 40) is None

    def test_a_quality_change_says_what_it_was(self, post, redis):
        """previous_quality_score is kept as the previous state."""
        post.fixture("cloud/health_template_quality_yellow.json")
        [event] = inbox(redis)
        assert (event["previous"], event["current"]) == (
            {"quality": "GREEN"},
            {"quality": "YELLOW"},
        )

    def test_an_unknown_event_value_is_stored_with_its_raw_value(self, post, redis):
        """A value the catalog does not know is stored, not dropped."""
        post.fixture("cloud/health_unknown_event.json")
        [event] = inbox(redis)
        assert event["event"] == "SOMETHING_NEW"

    @pytest.mark.parametrize(
        ("name", "value"),
        [("cloud/health_template_reinstated.json", "REINSTATED"),
         ("cloud/health_template_quality_green.json", "GREEN"),
         ("cloud/health_number_unflagged.json", "UNFLAGGED"),
         ("cloud/health_account_reinstated.json", "REINSTATE")],
    )  # fmt: skip
    def test_recoveries_are_stored_too(self, post, redis, name, value):
        """A recovery is stored like a problem: the worker resolves the open alert with it."""
        assert post.fixture(name).json["stored"] == 1
        assert [event["event"] for event in inbox(redis)] == [value]

    def test_benign_events_are_stored_for_counting(self, post, redis):
        """Five benign changes in one POST are five stored events."""
        reply = post.fixture("cloud/health_benign_batch.json")
        assert reply.json["stored"] == 5
        assert {event["event"] for event in inbox(redis)} == {
            "VERIFIED_ACCOUNT", "PARTNER_ADDED", "APPROVED", "CAPABILITY_UPDATE"}  # fmt: skip

    def test_a_batch_of_fields_and_a_failure_are_all_taken(self, post, redis):
        """Several fields, two entries and a failed status in one POST: six events."""
        reply = post.fixture("cloud/health_batch_mixed.json")
        assert reply.json["stored"] == 6
        kinds = sorted((event["kind"], event.get("field") or "") for event in inbox(redis))
        assert kinds == [
            ("health", "account_update"), ("health", "account_update"),
            ("health", "message_template_status_update"), ("health", "phone_number_quality_update"),
            ("health", "security"), ("status", ""),
        ]  # fmt: skip
        wabas = {
            event["waba_id"] for event in inbox(redis) if event.get("field") == "account_update"
        }
        assert wabas == {WABA, "999999999999999"}

    def test_an_invalid_change_is_quarantined_not_stored(self, post, redis):
        """An account_update without its event is kept in the quarantine with the reason."""
        reply = post.fixture("cloud/health_invalid_value.json")
        assert reply.status_code == 200 and reply.json["quarantined"]
        assert "event" in reply.json["problems"][0]
        assert redis.llen(intake.INBOX) == 0


class TestHostileHealth:
    def test_a_deep_value_is_stored_or_quarantined_never_a_500(self, post, redis):
        """A change value nested thousands deep is answered 200 and stored, cut to size."""
        deep: dict = {}
        node = deep
        for _ in range(900):
            node["x"] = {}
            node = node["x"]
        body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
            {"field": "security", "value": {"event": "PIN_CHANGED", "display_phone_number": "1",
                                            "requester": "2", "extra": deep}}]}]}  # fmt: skip
        reply = post.signed(body)
        assert reply.status_code == 200 and reply.json["stored"] == 1


class TestHealthOutage:
    def test_a_health_event_gets_503_while_redis_is_down(self, make_redis_server):
        """Redis stopped: 503 so Meta retries; restarted: the retry is stored."""
        server = make_redis_server()
        client = create_app(app_env(server.url)).test_client()
        body = load_fixture("cloud/health_account_restriction.json")
        headers = {"X-Hub-Signature-256": sign(body, APP_SECRET)}
        server.stop()
        down = client.post("/webhook", data=body, headers=headers)
        assert down.status_code == 503 and down.json["error"] == "storage-unavailable"
        server.start()
        again = client.post("/webhook", data=body, headers=headers)
        assert again.status_code == 200 and again.json["stored"] == 1
