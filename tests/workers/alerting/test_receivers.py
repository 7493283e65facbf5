"""Receivers: retries with backoff, Retry-After, fallback, dead letters, apprise and the log."""

from __future__ import annotations

import json
import logging
import time

import pytest

from bench._receiver import Receiver, Reply
from tests.workers.alerting import drive, drive_for, enriched, route
from workers.alerting import groups, notifications, receivers
from workers.outcomes import deadletters, ledger
from workers.settings import SettingsError, read


@pytest.fixture
def env(monkeypatch):
    """A clean alert environment with fast receiver retries."""
    for name in (
        "WASTATUS_ALERT_WEBHOOK_URL",
        "WASTATUS_ALERT_URLS",
        "WASTATUS_RULES",
        "WASTATUS_LOG_PII",
        "WASTATUS_ALERT_WEBHOOK_SECRET",
        "WASTATUS_RETRY_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)  # fmt: skip
    monkeypatch.setenv("WASTATUS_ALERT_RETRY_BASE", "0.1")
    monkeypatch.setenv("WASTATUS_ALERT_RETRY_MAX", "0.2")
    monkeypatch.setenv("WASTATUS_ALERT_ATTEMPTS", "3")
    return monkeypatch


@pytest.fixture
def second_receiver():
    server = Receiver().start()
    yield server
    server.stop()


def _rules_file(tmp_path, *specs: dict) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(json.dumps({"receivers": list(specs)}))  # JSON is YAML
    return str(path)


class TestRetries:
    def test_receiver_down_then_up_delivers_exactly_once(self, redis, receiver, env):
        """Two 500s, then a 200: the notification arrives once and the events are alerted."""
        env.setenv("WASTATUS_ALERT_WEBHOOK_URL", receiver.url + "/hook")
        receiver.script(Reply(500), times=2)
        events = enriched(131049, 4)
        groups.submit(redis, events, route())
        drive(redis, lambda: len(receiver.requests) >= 3)
        drive_for(redis, 1.5)
        assert [request.status for request in receiver.requests] == [500, 500, 200]
        ids = {request.headers["webhook-id"] for request in receiver.requests}
        assert len(ids) == 1  # the same notification each time, so receivers can deduplicate
        assert set(ledger.outcomes_of(redis, [e["event_id"] for e in events]).values()) == {
            "alerted"
        }

    def test_429_retry_after_sets_the_next_try(self, redis, receiver, env):
        """After a 429 with Retry-After: 3 the next try is scheduled no sooner than 3 s later."""
        env.setenv("WASTATUS_ALERT_WEBHOOK_URL", receiver.url + "/hook")
        receiver.script(Reply(429, {"Retry-After": "3"}), times=1)
        before = time.time()
        groups.submit(redis, enriched(131049, 1), route())
        drive(redis, lambda: len(receiver.requests) >= 1)
        [(nid, due)] = redis.zrange(notifications.OUTBOX, 0, -1, withscores=True)
        assert due >= before + 3  # without Retry-After the backoff here is at most 0.2 s
        record = notifications.get(redis, nid.decode())
        assert record["attempt"] == "2"
        assert "HTTP 429" in record["errors"]
        drive(redis, lambda: len(receiver.requests) >= 2)
        assert receiver.requests[1].status == 200

    def test_backoff_doubles_with_jitter_and_honours_retry_after(self, env):
        """The delay grows with the attempt, stays within equal-jitter bounds, and never
        undercuts Retry-After."""
        env.setenv("WASTATUS_ALERT_RETRY_BASE", "4")
        env.setenv("WASTATUS_ALERT_RETRY_MAX", "1000")
        for attempt, full in ((1, 4), (2, 8), (3, 16)):
            for _ in range(50):
                assert full / 2 <= notifications.backoff(attempt, None) <= full
        assert notifications.backoff(1, 30.0) >= 30.0


class TestFallback:
    def test_failing_receiver_falls_back_to_the_next(
        self, redis, receiver, second_receiver, env, tmp_path
    ):
        """A receiver that keeps failing hands the notification to the next one."""
        env.setenv("WASTATUS_ALERT_ATTEMPTS", "2")
        env.setenv("WASTATUS_RULES", _rules_file(
            tmp_path,
            {"name": "primary", "type": "webhook", "url": receiver.url + "/p"},
            {"name": "secondary", "type": "webhook", "url": second_receiver.url + "/s"},
        ))  # fmt: skip
        receiver.default = Reply(503)
        events = enriched(131049, 2)
        groups.submit(redis, events, route(receivers=("primary", "secondary")))
        drive(redis, lambda: len(second_receiver.requests) >= 1)
        drive_for(redis, 1.2)
        assert len(receiver.requests) == 2
        assert len(second_receiver.requests) == 1
        assert second_receiver.requests[0].json()["receiver"] == "secondary"
        assert deadletters.count(redis) == 0

    def test_all_receivers_failing_ends_in_a_dead_letter(
        self, redis, receiver, second_receiver, env, tmp_path
    ):
        """When every receiver keeps failing the notification becomes a dead letter."""
        env.setenv("WASTATUS_ALERT_ATTEMPTS", "2")
        env.setenv("WASTATUS_RULES", _rules_file(
            tmp_path,
            {"name": "primary", "type": "webhook", "url": receiver.url + "/p"},
            {"name": "secondary", "type": "webhook", "url": second_receiver.url + "/s"},
        ))  # fmt: skip
        receiver.default = Reply(500)
        second_receiver.default = Reply(500)
        events = enriched(131049, 3)
        groups.submit(redis, events, route(receivers=("primary", "secondary")))
        drive(redis, lambda: deadletters.count(redis) == 1)
        assert (len(receiver.requests), len(second_receiver.requests)) == (2, 2)
        [dead] = deadletters.entries(redis)
        assert dead.kind == "alert"
        assert "secondary" in dead.reason
        assert sorted(dead.item["event_ids"]) == sorted(e["event_id"] for e in events)
        outcomes = ledger.outcomes_of(redis, [e["event_id"] for e in events])
        assert set(outcomes.values()) == {"dead"}


class TestApprise:
    def test_apprise_json_url_gets_japanese_text(self, redis, receiver, env):
        """An apprise json:// URL receives a readable Japanese title and body."""
        host_port = receiver.url.removeprefix("http://")
        env.setenv("WASTATUS_ALERT_URLS", f"json://{host_port}/apprise")
        groups.submit(redis, enriched(131049, 5), route())
        drive(redis, lambda: len(receiver.requests) >= 1)
        sent = receiver.requests[0].json()
        assert receiver.requests[0].path.startswith("/apprise")
        assert "新しいエラー" in sent["title"]
        assert "131049" in sent["title"]
        assert "件数: 5 件" in sent["message"]
        assert "対処" in sent["message"]

    def test_english_when_configured(self, redis, receiver, env):
        """WASTATUS_LANG=en switches the text for people to English."""
        host_port = receiver.url.removeprefix("http://")
        env.setenv("WASTATUS_ALERT_URLS", f"json://{host_port}/apprise")
        env.setenv("WASTATUS_LANG", "en")
        groups.submit(redis, enriched(131049, 2), route())
        drive(redis, lambda: len(receiver.requests) >= 1)
        sent = receiver.requests[0].json()
        assert sent["title"].startswith("[wastatus] New failure")
        assert "What to do:" in sent["message"]

    def test_whatsapp_urls_are_refused(self, env):
        """A whatsapp:// Apprise URL is refused with a clear reason, in the settings (at
        start) and in a rules file."""
        with pytest.raises(SettingsError, match="never go over WhatsApp"):
            read({"WASTATUS_ALERT_URLS": "json://127.0.0.1/x, whatsapp://token@123/456"})
        spec = {"name": "wa", "type": "apprise", "url": "whatsapp://token@123/456"}
        with pytest.raises(receivers.ReceiverConfigError, match="never go over WhatsApp"):
            receivers.make(spec)

    def test_whatsapp_receiver_dead_letters_instead_of_sending(self, redis, env, tmp_path):
        """A notification whose only receiver is WhatsApp (a rules file edited after the
        worker's start check) goes to the dead letters, unsent."""
        spec = {"name": "wa", "type": "apprise", "url": "whatsapp://token@123/456"}
        env.setenv("WASTATUS_RULES", _rules_file(tmp_path, spec))
        groups.submit(redis, enriched(131049, 1), route(receivers=("wa",)))
        drive(redis, lambda: deadletters.count(redis) == 1)
        assert "WhatsApp" in deadletters.entries(redis)[0].reason


class TestLogReceiver:
    def test_without_configuration_alerts_go_to_the_log(self, redis, env, caplog):
        """No receiver configured: the notification is written to the wastatus.alerts log."""
        assert receivers.default_chain() == ("log",)
        caplog.set_level(logging.WARNING, logger="wastatus.alerts")
        events = enriched(131049, 2)
        groups.submit(redis, events, route())
        drive(redis, lambda: any(r.getMessage() == "alert" for r in caplog.records))
        record = next(r for r in caplog.records if r.getMessage() == "alert")
        assert record.fields["alert"]["count"] == 2
        assert "131049" in record.fields["title"]
        assert set(ledger.outcomes_of(redis, [e["event_id"] for e in events]).values()) == {
            "alerted"
        }

    def test_unknown_receiver_name_is_a_config_error(self, env):
        """A route naming a receiver nobody defined fails with the known names."""
        with pytest.raises(receivers.ReceiverConfigError, match="unknown receiver nowhere"):
            receivers.chain(("nowhere",))

    def test_bad_secret_and_whatsapp_are_reported_for_rules_check(self, env):
        """problems() names each bad rules-file receiver: a malformed secret, a WhatsApp URL."""
        found = receivers.problems([
            {"name": "ok", "type": "log"},
            {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:1/", "secret": "x!"},
            {"name": "wa", "type": "apprise", "urls": ["whatsapp://t@1/2"]},
        ])  # fmt: skip
        assert len(found) == 2
        assert found[0].startswith("receivers[1]: receiver hook: the secret must be whsec_")
        assert "WhatsApp" in found[1]
