"""POST /webhook: what is taken, stored, counted and answered for both API formats."""

import json

from tests.conftest import load_fixture
from workers.inbox import intake

TITLE_131049 = "This message was not delivered to maintain healthy ecosystem engagement."


def inbox(redis) -> list[dict]:
    """The stored events, oldest first."""
    return [json.loads(item) for item in reversed(redis.lrange(intake.INBOX, 0, -1))]


def drain_jobs(redis) -> int:
    from workers.queues import EVENTS, get_queue

    return get_queue(redis, EVENTS).count


class TestCloudFailures:
    def test_a_failed_status_becomes_one_normalized_event(self, post, redis):
        """Every field the workers need is carried over from Meta's documented example."""
        assert post.fixture("cloud/failed_131049.json").json == {
            "ok": True,
            "stored": 1,
            "duplicates": 0,
        }
        [event] = inbox(redis)
        assert event["api"] == "cloud"
        assert event["kind"] == "status"
        assert event["waba_id"] == "102290129340398"
        assert event["phone_number_id"] == "106540352242922"
        assert event["display_phone_number"] == "15550783881"
        assert event["message_id"] == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA"
        assert event["recipient_id"] == "16505551234"
        assert event["status"] == "failed"
        assert event["timestamp"] == 1751142888
        assert event["errors"] == [
            {
                "code": 131049,
                "title": TITLE_131049,
                "message": TITLE_131049,
                "details": "In order to maintain a healthy ecosystem engagement, "
                "the message failed to be delivered.",
                "href": "/documentation/business-messaging/whatsapp/support/error-codes",
            }
        ]
        assert event["received_at"] > 1.7e9
        assert len(event["event_id"]) == 32

    def test_keeps_the_callback_data(self, post, redis):
        """biz_opaque_callback_data ties the failure back to the business's record."""
        post.fixture("cloud/failed_131026_callback.json")
        assert inbox(redis)[0]["biz_opaque_callback_data"] == "order-1234"

    def test_a_value_level_error_becomes_an_event(self, post, redis):
        """An error not tied to a message (130429 at value.errors) is stored too."""
        assert post.fixture("cloud/value_error_130429.json").json["stored"] == 1
        [event] = inbox(redis)
        assert (event["kind"], event["message_id"], event["errors"][0]["code"]) == (
            "error",
            None,
            130429,
        )

    def test_an_inbound_message_error_becomes_an_event(self, post, redis):
        """messages[].errors (an unsupported message type) is stored with the sender."""
        post.fixture("cloud/inbound_unsupported_131051.json")
        [event] = inbox(redis)
        assert (event["kind"], event["recipient_id"], event["errors"][0]["code"]) == (
            "message",
            "818000000003",
            131051,
        )

    def test_every_entry_change_and_status_of_a_batch_is_taken(self, post, redis):
        """Two entries, four changes: all four failures (and the health event) are stored."""
        reply = post.fixture("cloud/batch_mixed.json")
        assert reply.json["stored"] == 5
        failures = [event for event in inbox(redis) if event["kind"] != "health"]
        codes = sorted(event["errors"][0]["code"] for event in failures)
        assert codes == [131000, 131016, 131026, 131047]
        by_code = {event["errors"][0]["code"]: event for event in failures}
        assert by_code[131047]["phone_number_id"] == "200000000000002"
        assert by_code[131026]["waba_id"] == "100000000000099"

    def test_each_group_participant_is_its_own_failure(self, post, redis):
        """Two participants of one group message are two events, not duplicates."""
        assert post.fixture("cloud/group_participant_failed.json").json["stored"] == 2
        participants = {event["recipient_participant_id"] for event in inbox(redis)}
        assert participants == {"818000000021", "818000000022"}

    def test_a_batch_of_1000_failures_is_taken_whole(self, post, redis):
        """Meta batches up to 1000 updates in one POST; every one of them is stored."""
        statuses = [
            {
                "id": f"wamid.BIG{i}",
                "status": "failed",
                "timestamp": "1700000000",
                "recipient_id": f"8180000{i:05d}",
                "errors": [{"code": 131026}],
            }
            for i in range(1000)
        ]
        body = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "1",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {"metadata": {"phone_number_id": "2"}, "statuses": statuses},
                        }
                    ],
                }
            ],
        }
        reply = post.signed(body)
        assert reply.json == {"ok": True, "stored": 1000, "duplicates": 0}
        assert redis.llen(intake.INBOX) == 1000
        assert {event["message_id"] for event in inbox(redis)} == {
            f"wamid.BIG{i}" for i in range(1000)
        }

    def test_storing_asks_for_one_drain_job(self, post, redis):
        """A burst of deliveries enqueues one drain job, not one per request."""
        post.fixture("cloud/failed_131049.json")
        post.fixture("cloud/failed_131026_callback.json")
        post.fixture("cloud/value_error_130429.json")
        assert drain_jobs(redis) == 1


class TestOnPremises:
    def test_a_failed_status_is_taken(self, post, redis):
        """The On-Prem shape has statuses at the top level and no metadata."""
        post.fixture("on_premises/failed_470.json")
        [event] = inbox(redis)
        assert (event["api"], event["errors"][0]["code"], event["phone_number_id"]) == (
            "on_premises",
            470,
            None,
        )

    def test_a_top_level_error_is_taken_with_its_details(self, post, redis):
        """errors[] at the top level becomes an event with details and href."""
        post.fixture("on_premises/errors_toplevel.json")
        [event] = inbox(redis)
        assert event["errors"][0]["details"] == "Upload failed on bad image"
        assert event["errors"][0]["href"].startswith("https://")

    def test_a_cloud_code_in_on_premises_shape_is_an_integer(self, post, redis):
        """Some providers send "131047" as a string; it is stored as the integer."""
        post.fixture("on_premises/cloud_code_in_onprem_shape.json")
        assert inbox(redis)[0]["errors"][0]["code"] == 131047


class TestStatusesThatDidNotFail:
    def test_are_answered_without_touching_redis(self, post, redis):
        """sent/delivered/read need no Redis round trip: nothing is written."""
        for name in [
            "cloud/sent_marketing.json",
            "on_premises/sent.json",
            "cloud/inbound_text.json",
        ]:
            reply = post.fixture(name)
            assert reply.json == {"ok": True, "stored": 0, "duplicates": 0}
        assert redis.dbsize() == 0

    def test_other_fields_are_acknowledged_and_counted(self, post, redis):
        """A field wastatus does not read (flows) is answered 200 and counted, not rejected."""
        from webhook.counters import FIELDS_IGNORED

        counter = FIELDS_IGNORED.labels(field="flows")
        before = counter._value.get()
        body = {
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "flows", "value": {"event": "X"}}]}],
        }
        assert post.signed(body).status_code == 200
        assert counter._value.get() == before + 1
        assert redis.dbsize() == 0

    def test_a_template_status_update_is_stored_as_a_health_event(self, post, redis):
        """message_template_status_update is no longer only counted: it is a health event."""
        assert post.fixture("cloud/template_status_update.json").json["stored"] == 1
        [event] = inbox(redis)
        assert (event["kind"], event["field"], event["event"]) == (
            "health",
            "message_template_status_update",
            "APPROVED",
        )

    def test_statuses_are_counted_by_status(self, post):
        """Each status in a batch is counted under its api and status."""
        from webhook.counters import STATUSES

        counter = STATUSES.labels(api="cloud", status="played")
        before = counter._value.get()
        post.fixture("cloud/batch_mixed.json")
        assert counter._value.get() == before + 1

    def test_unknown_extra_fields_are_ignored(self, post, redis):
        """Fields Meta adds later neither break validation nor get stored."""
        body = json.loads(load_fixture("cloud/failed_131049.json"))
        status = body["entry"][0]["changes"][0]["value"]["statuses"][0]
        status["brand_new_field"] = {"nested": [1, 2]}
        status["errors"][0]["another_new_field"] = True
        assert post.signed(body).json["stored"] == 1
        assert "brand_new_field" not in inbox(redis)[0]


class TestDuplicates:
    def test_a_redelivered_failure_is_answered_and_not_queued_again(self, post, redis):
        """Meta's at-least-once delivery: the second copy gets 200 and stores nothing."""
        assert post.fixture("cloud/failed_131049.json").json["stored"] == 1
        assert post.fixture("cloud/failed_131049.json").json == {
            "ok": True,
            "stored": 0,
            "duplicates": 1,
        }
        assert redis.llen(intake.INBOX) == 1

    def test_the_same_message_failing_with_another_code_is_not_a_duplicate(self, post, redis):
        """Identity includes the error codes."""
        body = json.loads(load_fixture("cloud/failed_131049.json"))
        post.signed(body)
        body["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"][0]["code"] = 131026
        assert post.signed(body).json["stored"] == 1

    def test_the_window_expires(self, post, redis, redis_url):
        """The seen-mark lives for the dedup window (default 8 days)."""
        post.fixture("cloud/failed_131049.json")
        [key] = redis.keys(intake.SEEN_PREFIX + "*")
        assert 9 * 86400 - 5 < redis.ttl(key) <= 9 * 86400  # a window and a one-day bucket
