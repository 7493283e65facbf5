"""Message timelines through the real endpoint and Redis: every status kept in one round trip
per request, the state resolved by rules whatever the arrival order, `wastatus message`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.conftest import APP_SECRET, app_env
from tests.fates import PHONE, body, status
from webhook import create_app
from webhook.cli import main
from webhook.signature import sign
from workers.outcomes import timelines

WEEK = 7 * 86400.0
MARKETING = {"billable": True, "pricing_model": "PMP", "category": "marketing", "type": "regular"}


@pytest.fixture
def tracked(redis, redis_url):
    """A client of an app with message tracking on (72 h)."""
    app = create_app(app_env(redis_url, WASTATUS_TRACK_MESSAGES="72h"))
    yield app.test_client()
    app.extensions["wastatus"].funnel.close()


def _post(client, *statuses) -> None:
    raw = json.dumps(body(*statuses)).encode()
    headers = {"X-Hub-Signature-256": sign(raw, APP_SECRET)}
    reply = client.post("/webhook", data=raw, headers=headers)
    assert reply.status_code == 200, reply.get_data(as_text=True)


def _calls(redis) -> dict[str, int]:
    return {name: stats["calls"] for name, stats in redis.info("commandstats").items()}


SCRIPT_COMMANDS = {"cmdstat_hget", "cmdstat_hset", "cmdstat_expireat", "cmdstat_zadd",
                   "cmdstat_zrem"}  # fmt: skip
"""What the timeline script runs inside Redis (commandstats counts those too)."""


def _sent_by_the_app(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Commands run between two readings, without the script's own and the readings'."""
    ran = {name: calls - before.get(name, 0) for name, calls in after.items()}
    return {name: calls for name, calls in ran.items()
            if calls and name not in SCRIPT_COMMANDS | {"cmdstat_info"}}  # fmt: skip


def _state(redis, wamid: str) -> str | None:
    return timelines.timeline(redis, wamid, WEEK)["state"]


class TestOrder:
    """The state follows the rules, not arrival order: failed is final, read implies delivered,
    nothing goes back, duplicates are kept once."""

    def test_read_before_delivered(self, redis, tracked):
        _post(tracked, status("w1", "read", 1_700_000_050))
        _post(
            tracked, status("w1", "sent", 1_700_000_000), status("w1", "delivered", 1_700_000_010)
        )
        found = timelines.timeline(redis, "w1", WEEK)
        assert found["state"] == "read"
        assert [s["status"] for s in found["statuses"]] == ["sent", "delivered", "read"]

    def test_delivered_after_failed_stays_failed(self, redis, tracked):
        _post(tracked, status("w2", "failed", 1_700_000_020, code=131026))
        _post(tracked, status("w2", "delivered", 1_700_000_030))
        assert _state(redis, "w2") == "failed"

    def test_sent_after_read_does_not_go_back(self, redis, tracked):
        _post(tracked, status("w3", "read", 1_700_000_050))
        _post(tracked, status("w3", "sent", 1_700_000_000))
        assert _state(redis, "w3") == "read"

    def test_duplicates_are_kept_once(self, redis, tracked):
        for _ in range(3):
            _post(tracked, status("w4", "sent", 1_700_000_000), status("w4", "sent", 1_700_000_000))
        found = timelines.timeline(redis, "w4", WEEK)
        assert [s["status"] for s in found["statuses"]] == ["sent"]

    def test_played_and_deleted(self, redis, tracked):
        _post(tracked, status("w5", "sent", 1_700_000_000), status("w5", "played", 1_700_000_090))
        assert _state(redis, "w5") == "played"
        _post(tracked, status("w6", "read", 1_700_000_000), status("w6", "deleted", 1_700_000_090))
        assert _state(redis, "w6") == "deleted"

    @pytest.mark.parametrize(
        ("names", "expected"),
        [(["delivered", "sent"], "delivered"), (["read", "failed", "delivered"], "failed"),
         (["warning"], None), (["played", "read"], "played"), ([], None)],
    )  # fmt: skip
    def test_rules(self, names, expected):
        assert timelines.state(names) == expected


class TestStorage:
    """One round trip per request that carries statuses; none with tracking off; records that
    expire; Meta's and arrival times, pricing and errors kept."""

    def test_one_round_trip_per_request(self, redis, tracked):
        _post(tracked, status("warm", "sent"))  # loads the script once
        before = _calls(redis)
        _post(tracked, *(status(f"r{i}", name) for i in range(20) for name in ("sent", "read")))
        assert _sent_by_the_app(before, _calls(redis)) == {"cmdstat_evalsha": 1}

    def test_none_with_tracking_off(self, redis, client):
        before = _calls(redis)
        raw = json.dumps(body(status("off", "delivered"))).encode()
        reply = client.post(
            "/webhook", data=raw, headers={"X-Hub-Signature-256": sign(raw, APP_SECRET)}
        )
        assert reply.status_code == 200
        assert _sent_by_the_app(before, _calls(redis)) == {}
        assert not list(redis.scan_iter(match=timelines.PREFIX + "*"))

    def test_a_record_carries_everything_and_expires(self, redis, tracked):
        _post(tracked, status("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI5QTNDQTVCM0RGQkI0NTI3RTEA", "sent",
                              1_700_000_000, tracker="spring;sale", pricing=MARKETING))  # fmt: skip
        _post(tracked, status("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI5QTNDQTVCM0RGQkI0NTI3RTEA",
                              "failed", 1_700_000_007, code=131049))  # fmt: skip
        found = timelines.timeline(
            redis, "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI5QTNDQTVCM0RGQkI0NTI3RTEA", WEEK
        )
        assert found["phone_number_id"] == PHONE
        assert found["tracker"] == "spring,sale"  # a record's separator is replaced
        assert found["pricing"] == "marketing/regular/marketing"
        sent, failed = found["statuses"]
        assert sent["timestamp"] == 1_700_000_000 and sent["arrived"] > 1_700_000_000
        assert failed["code"] == 131049 and failed["error"]["title"] == "Meta chose not to deliver"
        (key,) = redis.scan_iter(match=timelines.PREFIX + "*")
        assert 3 * 86400 < redis.ttl(key) <= 4 * 86400 + 60


class TestCommand:
    """`wastatus message WAMID` prints the timeline, explained, or JSON."""

    def test_table_and_json(self, redis, tracked, monkeypatch, redis_url):
        _post(tracked, status("wamid.CLI", "sent", 1_700_000_000),
              status("wamid.CLI", "failed", 1_700_000_005, code=131049))  # fmt: skip
        monkeypatch.setenv("REDIS_URL", redis_url)
        monkeypatch.setenv("WASTATUS_TRACK_MESSAGES", "72h")
        shown = CliRunner().invoke(main, ["message", "wamid.CLI", "--lang", "en"])
        assert shown.exit_code == 0, shown.output
        assert "state: failed" in shown.output
        assert "131049 Meta chose not to deliver" in shown.output
        assert "2023-11-14 22:13:20 UTC" in shown.output
        as_json = json.loads(CliRunner().invoke(main, ["message", "wamid.CLI", "--json"]).output)
        assert as_json["state"] == "failed" and len(as_json["statuses"]) == 2

    def test_unknown_message_and_tracking_off(self, redis, monkeypatch, redis_url):
        monkeypatch.setenv("REDIS_URL", redis_url)
        monkeypatch.setenv("WASTATUS_TRACK_MESSAGES", "72h")
        missing = CliRunner().invoke(main, ["message", "wamid.NONE"])
        assert missing.exit_code == 1 and "no status of wamid.NONE is kept" in missing.output
        monkeypatch.setenv("WASTATUS_TRACK_MESSAGES", "0")
        off = CliRunner().invoke(main, ["message", "wamid.NONE"])
        assert off.exit_code == 1 and "message tracking is off" in off.output
