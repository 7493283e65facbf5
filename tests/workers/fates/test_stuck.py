"""Messages stuck in `sent`, from statuses posted to the real endpoint (tracking on) to a real
receiver through real workers, with the stuck window shortened to two seconds."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import APP_SECRET, app_env, drive, drive_for
from tests.fates import PHONE, alerts_to, body, status
from webhook import create_app
from webhook.signature import sign
from workers.alerting import text
from workers.fates import stuck
from workers.outcomes import timelines


@pytest.fixture
def hook(receiver, monkeypatch):
    return alerts_to(receiver, monkeypatch, TRACK_MESSAGES="72h", STUCK_AFTER="2s")


@pytest.fixture
def tracked(redis, redis_url):
    app = create_app(app_env(redis_url, WASTATUS_TRACK_MESSAGES="72h", WASTATUS_STUCK_AFTER="2s"))
    yield app.test_client()
    app.extensions["wastatus"].funnel.close()


def _post(client, *statuses) -> None:
    raw = json.dumps(body(*statuses)).encode()
    reply = client.post(
        "/webhook", data=raw, headers={"X-Hub-Signature-256": sign(raw, APP_SECRET)}
    )
    assert reply.status_code == 200


def _stuck_alerts(receiver) -> list[dict]:
    return [request.json() for request in receiver.requests
            if request.json()["alerts"][0].get("kind") == "stuck"]  # fmt: skip


class TestStuck:
    """A message left at `sent` alerts once after the window; one delivered in time does not."""

    def test_alerts_once_and_not_for_the_delivered(self, redis, tracked, hook):
        sent_at = int(time.time())
        _post(tracked, *(status(f"wamid.S{i}", "sent", sent_at, tracker="spring-sale")
                         for i in range(3)))  # fmt: skip
        _post(tracked, status("wamid.S2", "delivered", sent_at + 1, tracker="spring-sale"))
        assert stuck.scan(redis) == 0, "not due yet"
        time.sleep(max(0.0, sent_at + 2.2 - time.time()))
        assert stuck.scan(redis) == 2
        assert stuck.scan(redis) == 0, "each message alerts once"
        drive(redis, lambda: len(_stuck_alerts(hook)) == 1)
        drive_for(redis, 1.0)
        (alert,) = _stuck_alerts(hook)
        assert alert["count"] == 2
        assert {item["message_id"] for item in alert["alerts"]} == {"wamid.S0", "wamid.S1"}
        assert text.title(alert, "en") == (
            f"[wastatus] Stuck in sent: 2 messages (phone_number_id={PHONE}, tracker=spring-sale)"
        )
        assert "Meta drops messages it could not deliver within 30 days." in text.body(alert, "en")
        assert "30 日以内" in text.body(alert, "ja") and "ブロック" in text.body(alert, "ja")
        assert redis.zcard(timelines.STUCK_DUE) == 0

    def test_failed_or_read_first_is_never_due(self, redis, tracked, hook):
        sent_at = int(time.time()) - 60
        _post(tracked, status("wamid.F", "failed", sent_at + 1, code=131026),
              status("wamid.R", "read", sent_at + 1))  # fmt: skip
        _post(tracked, status("wamid.F", "sent", sent_at), status("wamid.R", "sent", sent_at))
        assert redis.zcard(timelines.STUCK_DUE) == 0
        assert stuck.scan(redis) == 0

    def test_the_scan_reads_only_what_is_due(self, redis, tracked, hook):
        """A thousand messages not due yet cost the scan one empty range read, nothing more."""
        now = int(time.time())
        _post(tracked, *(status(f"wamid.N{i}", "sent", now) for i in range(1000)))
        before = redis.info("commandstats")
        assert stuck.scan(redis) == 0
        after = redis.info("commandstats")
        ran = {name for name, stats in after.items()
               if stats["calls"] != before.get(name, {}).get("calls")}  # fmt: skip
        assert "cmdstat_hget" not in ran and "cmdstat_scan" not in ran and "cmdstat_keys" not in ran
        assert "cmdstat_zrangebyscore" in ran
