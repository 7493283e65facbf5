"""Phone numbers leave wastatus masked (the last four digits), once, wherever they go."""

from __future__ import annotations

import json

import pytest

from tests.workers.alerting import drive, enriched, route
from workers import logs
from workers.alerting import groups as alerts
from workers.alerting import text as alert_text
from workers.outcomes import ledger
from workers.settings import read

NUMBER = "819012345678"
MASKED = "********5678"

RULES = """
routes:
  - name: to-machines
    action: alert
    group_by: [recipient_id, code]
    group_wait: 0s
    receivers: [hook]
    continue: true
  - name: to-people
    action: alert
    group_by: [recipient_id, code]
    group_wait: 0s
    receivers: [people]
    continue: true
  - name: to-log
    action: alert
    group_by: [recipient_id, code]
    group_wait: 0s
    receivers: [log]
receivers:
  - {{name: hook, type: webhook, url: "{url}/hook"}}
  - {{name: people, type: apprise, urls: ["json://{host_port}/apprise"]}}
  - {{name: log, type: log}}
"""


def everything_in(redis) -> bytes:
    """Every key's name and value in the Redis database, concatenated."""
    found = []
    for key in redis.scan_iter(count=1000):
        kind = redis.type(key).decode()
        found.append(key)
        if kind == "string":
            found.append(redis.get(key) or b"")
        elif kind == "hash":
            found.extend(b for pair in redis.hgetall(key).items() for b in pair)
        elif kind == "list":
            found.extend(redis.lrange(key, 0, -1))
        elif kind == "set":
            found.extend(redis.smembers(key))
        elif kind == "zset":
            found.extend(redis.zrange(key, 0, -1))
        elif kind == "stream":
            for _, fields in redis.xrange(key):
                found.extend(b for pair in fields.items() for b in pair)
    return b"\n".join(found)


@pytest.fixture
def per_number_rules(tmp_path, monkeypatch, redis_url, receiver):
    host_port = receiver.url.removeprefix("http://")
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(url=receiver.url, host_port=host_port))
    monkeypatch.setenv("WASTATUS_RULES", str(path))
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("WASTATUS_LANG", "en")
    for name in ("WASTATUS_RETRY_URL", "WASTATUS_LOG_PII", "WASTATUS_ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    return path


class TestNoNumberLeaks:
    """With `group_by: [recipient_id, code]`, no receiver, log line or key holds the number."""

    def test_number_is_masked_everywhere_it_goes(
        self, redis, post, receiver, per_number_rules, capfd
    ):
        """Webhook JSON, Apprise text, the log receiver's line and Redis show only ****5678."""
        body = {
            "statuses": [
                {
                    "id": "wamid.PII",
                    "recipient_id": NUMBER,
                    "status": "failed",
                    "timestamp": "1700000000",
                    "errors": [{"code": 131026}],
                }
            ]
        }
        assert post.with_token(body).status_code == 200
        drive(
            redis,
            lambda: (
                ledger.summary(redis)["outcomes"]["alerted"] == 1 and len(receiver.requests) >= 2
            ),
        )
        sent = b"\n".join(request.body for request in receiver.requests).decode()
        logged = capfd.readouterr().err
        stored = everything_in(redis).decode("utf-8", "replace")
        for where, text in (("receivers", sent), ("logs", logged), ("redis", stored)):
            assert NUMBER not in text, f"the whole number is in the {where}"
        hook = next(r for r in receiver.requests if r.path == "/hook").json()
        assert hook["group_key"] == f"to-machines:recipient_id={MASKED},code=131026"
        assert hook["alerts"][0]["recipient_id"] == MASKED
        people = next(r for r in receiver.requests if r.path.startswith("/apprise")).json()
        assert f"recipient_id={MASKED}" in people["message"]
        assert f"→ {MASKED}" in people["message"]
        (line,) = [json.loads(x) for x in logged.splitlines() if '"event":"alert"' in x]
        assert line["alert"]["alerts"][0]["recipient_id"] == MASKED
        assert line["alert"]["group_key"].endswith(f"recipient_id={MASKED},code=131026")

    def test_numbers_ending_alike_stay_two_groups(self, redis):
        """Masking the shown key does not merge two numbers with the same last four digits."""
        by_number = route(group_by=("recipient_id", "code"), group_wait=3600.0)
        events = enriched(131026, 1, recipient_id="819011115678")
        events += enriched(131026, 1, recipient_id="819022225678")
        alerts.submit(redis, events, by_number, settings=read({}))
        groups = alerts.open_groups(redis)
        assert len(groups) == 2
        assert {group["group_key"] for group in groups} == {
            f"test:recipient_id={MASKED},code=131026"
        }

    def test_pii_setting_keeps_the_whole_number(self, redis):
        """With WASTATUS_LOG_PII=1 the group key shows the number whole, as recipient_id does."""
        by_number = route(group_by=("recipient_id", "code"), group_wait=3600.0)
        alerts.submit(
            redis,
            enriched(131026, 1, recipient_id=NUMBER),
            by_number,
            settings=read({"WASTATUS_LOG_PII": "1"}),
        )
        (group,) = alerts.open_groups(redis)
        assert group["group_key"] == f"test:recipient_id={NUMBER},code=131026"


class TestMaskOnce:
    """Masking an already masked number shows the same last four digits, not only stars."""

    def test_mask_is_idempotent(self):
        """mask_phone(mask_phone(n)) == mask_phone(n)."""
        assert logs.mask_phone(NUMBER) == MASKED
        assert logs.mask_phone(MASKED) == MASKED
        assert logs.scrub({"recipient_id": MASKED}) == {"recipient_id": MASKED}

    def test_short_values_are_still_hidden(self):
        """A value of four digits or fewer, never masked before, shows no digit."""
        assert logs.mask_phone("1234") == "****"

    def test_apprise_text_shows_the_last_four_digits(self):
        """The people's text of an alert item keeps what the item masked."""
        alert = {
            "status": "firing",
            "count": 1,
            "first_seen": "a",
            "last_seen": "b",
            "group_key": "g",
            "alerts": [alerts.alert_item(enriched(131026)[0])],
        }
        assert "→ ********5678" in alert_text.body(alert, "en")
