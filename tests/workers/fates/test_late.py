"""Out-of-order safety through the real endpoint, workers and receiver: a delivered or read
that arrives after its failure was alerted shows in the group's next notification."""

from __future__ import annotations

import pytest

from tests.conftest import Poster, app_env, drive
from tests.fates import alerts_to, body, status
from webhook import create_app
from workers.alerting import groups, text
from workers.fates import late


@pytest.fixture
def hook(receiver, monkeypatch):
    # with tracking on, the drain job remembers each alerted failure's group
    return alerts_to(receiver, monkeypatch, GROUP_INTERVAL="1s", TRACK_MESSAGES="72h")


@pytest.fixture
def client(redis, redis_url):
    """A client of an app with message tracking on (the web side lists what progressed)."""
    app = create_app(app_env(redis_url, WASTATUS_TRACK_MESSAGES="72h"))
    yield app.test_client()
    app.extensions["wastatus"].funnel.close()


@pytest.fixture
def post(client) -> Poster:
    return Poster(client)


def _post(post, client, *statuses) -> None:
    assert post.signed(body(*statuses)).status_code == 200
    assert client.application.extensions["wastatus"].funnel.flush()  # the thread's next flush


class TestLaterDelivered:
    """ "1 of 4 later reported delivered or read", counted once per message."""

    def test_the_next_notification_says_so(self, redis, post, client, hook):
        _post(post, client, *(status(f"wamid.L{i}", "failed", code=131026) for i in range(3)))
        drive(redis, lambda: len(hook.requests) == 1)
        first = hook.requests[0].json()
        assert first["count"] == 3 and first["later_delivered"] == 0
        _post(post, client, status("wamid.L1", "delivered"), status("wamid.L1", "read"))
        _post(post, client, status("wamid.L1", "read"), status("wamid.OTHER", "read"))
        assert late.later_delivered(redis, first["group_id"]) == 1, "once per message"
        _post(post, client, status("wamid.L3", "failed", code=131026))
        drive(redis, lambda: len(hook.requests) == 2)
        update = hook.requests[1].json()
        assert update["status"] == "update" and update["count"] == 4
        assert update["later_delivered"] == 1
        assert "1 of 4 later reported delivered or read" in text.body(update, "en")
        assert "うち 1 件は後から配信済み/既読と報告されました" in text.body(update, "ja")

    def test_a_closed_group_is_left_alone(self, redis, post, client, hook):
        _post(post, client, status("wamid.C0", "failed", code=131026))
        drive(redis, lambda: len(hook.requests) == 1)
        gid = hook.requests[0].json()["group_id"]
        redis.delete(groups.group_hash(gid))  # as the group's close does
        _post(post, client, status("wamid.C0", "delivered"))
        assert not redis.exists(groups.group_hash(gid))

    def test_nothing_is_remembered_with_tracking_off(self, redis, redis_url, receiver,
                                                     monkeypatch):  # fmt: skip
        monkeypatch.setenv("WASTATUS_ALERT_WEBHOOK_URL", receiver.url + "/alerts")
        monkeypatch.setenv("WASTATUS_GROUP_WAIT", "0")
        for name in ("WASTATUS_TRACK_MESSAGES", "WASTATUS_RULES", "WASTATUS_ALERT_URLS"):
            monkeypatch.delenv(name, raising=False)
        app = create_app(app_env(redis_url))
        poster = Poster(app.test_client())
        assert poster.signed(body(status("wamid.O0", "failed", code=131026))).status_code == 200
        drive(redis, lambda: len(receiver.requests) == 1)
        assert not list(redis.scan_iter(match=late.ALERTED_PREFIX + "*"))
        app.extensions["wastatus"].funnel.close()
