"""Alert groups on a real Redis with real RQ workers and a loopback receiver."""

from __future__ import annotations

import pytest

from bench._receiver import Reply
from tests.workers.alerting import drive, drive_for, enriched, route, work
from workers.alerting import groups, notifications
from workers.jobs import Lock
from workers.outcomes import ledger
from workers.signing import generate_secret, verify_standard_webhook


@pytest.fixture
def hook(receiver, monkeypatch):
    """The loopback receiver as the zero-configuration webhook receiver, with a secret."""
    secret = generate_secret()
    monkeypatch.setenv("WASTATUS_ALERT_WEBHOOK_URL", receiver.url + "/alerts")
    monkeypatch.setenv("WASTATUS_ALERT_WEBHOOK_SECRET", secret)
    monkeypatch.delenv("WASTATUS_ALERT_URLS", raising=False)
    monkeypatch.delenv("WASTATUS_RULES", raising=False)
    monkeypatch.delenv("WASTATUS_LOG_PII", raising=False)
    receiver.secret = secret
    return receiver


def _submit(redis, events, the_route, batch=250):
    for start in range(0, len(events), batch):
        groups.submit(redis, events[start : start + batch], the_route)


class TestGrouping:
    def test_thousand_events_make_one_notification(self, redis, hook):
        """1000 failures of one code and number become one notification counting 1000."""
        events = enriched(131049, 1000)
        _submit(redis, events, route())
        drive(redis, lambda: len(hook.requests) >= 1)
        drive_for(redis, 1.5)
        assert len(hook.requests) == 1
        alert = hook.requests[0].json()
        assert alert["status"] == "firing"
        assert alert["count"] == 1000
        assert alert["new"] == 1000
        assert alert["truncated"] is True
        assert len(alert["alerts"]) == groups.SAMPLE_SIZE
        assert alert["receiver"] == "webhook"
        assert alert["alerts"][0]["code"] == 131049
        outcomes = ledger.outcomes_of(redis, [event["event_id"] for event in events])
        assert set(outcomes.values()) == {"alerted"}

    def test_groups_split_by_code_and_number(self, redis, hook):
        """Events of two codes, or of two numbers, go out as separate notifications."""
        the_route = route()
        _submit(redis, enriched(131049, 3) + enriched(131026, 2), the_route)
        _submit(redis, enriched(131049, 4, phone_number_id="999"), the_route)
        drive(redis, lambda: len(hook.requests) >= 3)
        drive_for(redis, 1.2)
        counts = sorted(request.json()["count"] for request in hook.requests)
        assert counts == [2, 3, 4]

    def test_alert_json_carries_the_catalog_in_both_languages(self, redis, hook):
        """Each sampled alert has the documented fields, explanation and action in ja and en."""
        _submit(redis, enriched(131049, 1), route())
        drive(redis, lambda: len(hook.requests) >= 1)
        alert = hook.requests[0].json()
        assert {"receiver", "group_key", "status", "count", "first_seen", "last_seen",
                "truncated", "alerts"} <= set(alert)  # fmt: skip
        item = alert["alerts"][0]
        for field in ("api", "code", "title", "category", "severity", "retry", "explanation",
                      "action", "message_id", "recipient_id", "phone_number_id", "waba_id",
                      "biz_opaque_callback_data", "timestamp"):  # fmt: skip
            assert field in item, field
        assert set(item["explanation"]) == {"ja", "en"}
        assert set(item["action"]) == {"ja", "en"}
        assert alert["first_seen"].endswith("Z")
        assert alert["truncated"] is False

    def test_webhook_is_signed_the_standard_webhooks_way(self, redis, hook):
        """The webhook receiver's request verifies with the configured secret."""
        _submit(redis, enriched(131049, 2), route())
        drive(redis, lambda: len(hook.requests) >= 1)
        request = hook.requests[0]
        verify_standard_webhook(hook.secret, request.headers, request.body)
        assert request.headers["webhook-id"] == request.json()["id"]


class TestOpenGroupCount:
    def test_counts_what_open_groups_lists_and_skips_a_group_whose_hash_is_gone(self, redis):
        """/metrics' cheap count agrees with `open_groups`, stale index entries included."""
        for code in (131049, 131026, 131047):
            groups.submit(redis, enriched(code, 2), route(group_wait=3600))
        assert groups.open_group_count(redis) == len(groups.open_groups(redis)) == 3
        gid = redis.zrange(groups.GROUPS, 0, 0)[0].decode()
        redis.delete(groups.group_hash(gid))  # left in the index, as after a lost flush
        assert groups.open_group_count(redis) == len(groups.open_groups(redis)) == 2


class TestIntervals:
    def test_later_events_are_sent_as_an_update(self, redis, hook):
        """Events arriving after the first notification go out once more as an update."""
        the_route = route(group_interval=0.5)
        _submit(redis, enriched(131049, 3), the_route)
        drive(redis, lambda: len(hook.requests) >= 1)
        later = enriched(131049, 2)
        _submit(redis, later, the_route)
        drive(redis, lambda: len(hook.requests) >= 2)
        drive_for(redis, 1.2)
        assert [request.json()["status"] for request in hook.requests] == ["firing", "update"]
        update = hook.requests[1].json()
        assert (update["count"], update["new"]) == (5, 2)
        outcomes = ledger.outcomes_of(redis, [event["event_id"] for event in later])
        assert set(outcomes.values()) == {"alerted"}

    def test_update_waits_for_the_group_interval(self, redis, hook):
        """With a long group_interval, new events wait: no second notification yet."""
        the_route = route(group_interval=3600)
        _submit(redis, enriched(131049, 1), the_route)
        drive(redis, lambda: len(hook.requests) >= 1)
        _submit(redis, enriched(131049, 1), the_route)
        drive_for(redis, 1.2)
        assert len(hook.requests) == 1
        [group] = groups.open_groups(redis)
        assert (group["count"], group["pending"]) == (2, 1)

    def test_unchanged_group_repeats(self, redis, hook):
        """A group with no new events is sent again, unchanged, after repeat_interval."""
        _submit(redis, enriched(131049, 2), route(repeat_interval=1.0))
        drive(redis, lambda: len(hook.requests) >= 2)
        first, second = (request.json() for request in hook.requests[:2])
        assert (first["status"], second["status"]) == ("firing", "repeat")
        assert (second["count"], second["new"]) == (2, 0)
        assert first["id"] != second["id"]

    def test_idle_group_closes_after_the_resolve_time(self, redis, hook, monkeypatch):
        """A group quiet for WASTATUS_GROUP_RESOLVE closes; its next event fires anew."""
        monkeypatch.setenv("WASTATUS_GROUP_RESOLVE", "0.5")
        the_route = route()
        _submit(redis, enriched(131049, 1), the_route)
        drive(redis, lambda: len(hook.requests) >= 1)
        drive(redis, lambda: groups.open_groups(redis) == [])
        _submit(redis, enriched(131049, 1), the_route)
        drive(redis, lambda: len(hook.requests) >= 2)
        assert hook.requests[1].json()["status"] == "firing"
        assert hook.requests[1].json()["count"] == 1


class TestRestarts:
    def test_a_stale_flush_job_does_nothing(self, redis, hook):
        """A flush whose job id is not the group's current one neither sends nor moves events."""
        events = enriched(131049, 2)
        _submit(redis, events, route(group_wait=3600))
        gid = groups.group_id(groups.group_label(events[0], route()))
        assert groups.flush_group(gid, job_id="wastatus-flush-old", connection=redis) == "stale"
        work(redis)
        assert hook.requests == []
        assert groups.open_groups(redis)[0]["pending"] == 2

    def test_lost_jobs_are_recovered_once(self, redis, hook):
        """When scheduled jobs are lost (Redis restart, killed worker), recover sends once."""
        events = enriched(131049, 5)
        _submit(redis, events, route(group_wait=0.1))
        redis.delete(*redis.keys("rq:scheduled:*"))  # the scheduled flush is gone
        drive_for(redis, 1.2)
        assert hook.requests == []
        assert groups.recover(redis, grace=0) == 1
        drive(redis, lambda: len(hook.requests) >= 1)
        drive_for(redis, 1.2)
        assert len(hook.requests) == 1
        assert hook.requests[0].json()["count"] == 5

    def test_lost_delivery_retry_is_recovered_once(self, redis, hook, monkeypatch):
        """A delivery retry lost from the scheduler is re-issued from the outbox, once."""
        monkeypatch.setenv("WASTATUS_ALERT_RETRY_BASE", "0.1")
        hook.script(Reply(500), times=1)
        events = enriched(131049, 3)
        _submit(redis, events, route(group_wait=0))
        drive(redis, lambda: len(hook.requests) >= 1)
        redis.delete(*redis.keys("rq:scheduled:*"))  # the scheduled retry is gone
        drive_for(redis, 1.2)
        assert len(hook.requests) == 1
        assert groups.recover(redis, grace=0) == 1
        drive(redis, lambda: len(hook.requests) >= 2)
        drive_for(redis, 1.2)
        assert [request.status for request in hook.requests] == [500, 200]
        outcomes = ledger.outcomes_of(redis, [event["event_id"] for event in events])
        assert set(outcomes.values()) == {"alerted"}

    def test_a_closed_group_reopens_with_fresh_job_ids(self, redis, hook, monkeypatch):
        """A group reopened under a closed one's key never reuses the old flush job ids."""
        monkeypatch.setenv("WASTATUS_GROUP_RESOLVE", "0.3")
        the_route = route(group_wait=0)
        events = enriched(131049, 1)
        gid = groups.group_id(groups.group_label(events[0], the_route))
        _submit(redis, events, the_route)
        first_job = redis.hget(groups.group_hash(gid), "job")
        drive(redis, lambda: groups.open_groups(redis) == [])
        _submit(redis, enriched(131049, 1), the_route)
        assert redis.hget(groups.group_hash(gid), "job") != first_job
        drive(redis, lambda: len(hook.requests) >= 2)

    def test_locked_flush_hands_its_turn_on(self, redis, hook):
        """The due flush, finding its group locked by another, passes its turn, not drops it."""
        events = enriched(131049, 2)
        the_route = route(group_wait=3600)
        _submit(redis, events, the_route)
        gid = groups.group_id(groups.group_label(events[0], the_route))
        job = redis.hget(groups.group_hash(gid), "job").decode()
        other = Lock(redis, "flush:" + gid)
        assert other.acquire()
        assert groups.flush_group(gid, job_id=job, connection=redis) == "locked"
        other.release()
        assert redis.hget(groups.group_hash(gid), "job").decode() != job
        redis.hset(groups.group_hash(gid), "due", "0")  # due now, not in an hour
        drive(redis, lambda: len(hook.requests) >= 1)
        assert hook.requests[0].json()["count"] == 2

    def test_flush_twice_sends_once(self, redis, hook):
        """Running the due flush job twice (a requeued job) leaves one notification."""
        events = enriched(131049, 3)
        the_route = route(group_wait=0.1)
        _submit(redis, events, the_route)
        gid = groups.group_id(groups.group_label(events[0], the_route))
        job = redis.hget(groups.group_hash(gid), "job").decode()
        drive(redis, lambda: len(hook.requests) >= 1)
        # the rerun finds its notification delivered already: nothing more is sent
        assert groups.flush_group(gid, job_id=job, connection=redis) == "resumed"
        drive_for(redis, 1.2)
        assert len(hook.requests) == 1


class TestContent:
    def test_recipient_is_masked_by_default(self, redis, hook):
        """recipient_id shows only its last 4 digits unless WASTATUS_LOG_PII=1."""
        _submit(redis, enriched(131049, 1, recipient_id="819012345678"), route())
        drive(redis, lambda: len(hook.requests) >= 1)
        recipient = hook.requests[0].json()["alerts"][0]["recipient_id"]
        assert recipient.endswith("5678")
        assert "81901234" not in recipient

    def test_pii_flag_keeps_the_recipient(self, redis, hook, monkeypatch):
        """With WASTATUS_LOG_PII=1 the recipient is sent whole."""
        monkeypatch.setenv("WASTATUS_LOG_PII", "1")
        _submit(redis, enriched(131049, 1, recipient_id="819012345678"), route())
        drive(redis, lambda: len(hook.requests) >= 1)
        assert hook.requests[0].json()["alerts"][0]["recipient_id"] == "819012345678"

    def test_retry_exhausted_events_say_so_in_their_own_group(self, redis, hook):
        """Events whose resends ran out are grouped apart and flagged retry_exhausted."""
        the_route = route()
        _submit(redis, enriched(131000, 2), the_route)
        _submit(redis, enriched(131000, 1, retry_exhausted=True, attempt=5), the_route)
        drive(redis, lambda: len(hook.requests) >= 2)
        by_flag = {request.json()["retry_exhausted"]: request.json() for request in hook.requests}
        assert by_flag[True]["count"] == 1
        assert by_flag[True]["alerts"][0]["retry_exhausted"] is True
        assert by_flag[False]["count"] == 2
        assert by_flag[True]["group_key"].endswith(":retry_exhausted")


class TestOpenGroups:
    def test_open_groups_lists_state_for_status(self, redis, hook):
        """open_groups shows key, receiver, count, first/last seen and the next flush."""
        _submit(redis, enriched(131049, 7), route(group_wait=3600))
        [group] = groups.open_groups(redis)
        assert group["count"] == 7
        assert group["receiver"] == "(default)"
        assert group["group_key"].startswith("test:phone_number_id=")
        assert group["next_flush"] is not None
        assert group["first_seen"] <= group["last_seen"]

    def test_notification_log_keeps_delivered_records(self, redis, hook):
        """A delivered notification stays readable in the log with its receiver."""
        _submit(redis, enriched(131049, 1), route())
        drive(redis, lambda: len(hook.requests) >= 1)
        nid = hook.requests[0].json()["id"]
        record = notifications.get(redis, nid)
        assert record["state"] == "delivered"
        assert record["delivered_to"] == "webhook"
