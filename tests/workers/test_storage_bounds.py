"""Every store that hostile or merely long-lived input could grow stays within its bound."""

from __future__ import annotations

import json
import random
import time

import pytest
import redis as redis_lib

from bench._receiver import Reply
from tests.conftest import APP_SECRET, ONPREM_TOKEN, app_env
from tests.workers.alerting import drive, enriched, route
from webhook import counters, create_app, quarantine
from webhook.signature import sign
from workers import drain, metrics, storage
from workers.alerting import groups, silences
from workers.fates import late
from workers.inbox import intake
from workers.outcomes import deadletters, ledger
from workers.replay import replay
from workers.settings import read

MiB = 1024 * 1024


def post_token(client, body: bytes):
    headers = {"Authorization": f"Bearer {ONPREM_TOKEN}"}
    return client.post("/webhook", data=body, headers=headers)


class TestQuarantineBounds:
    """The quarantine keeps at most its entries and bytes, oldest dropped, each body cut."""

    def test_25_bodies_of_4_mib_keep_at_most_the_byte_budget(self, redis, client):
        """25 invalid 4 MiB bodies (100 MiB sent) keep 1 MiB each by default, 25 MiB in all."""
        body = b"x" * (4 * MiB - 1)
        for _ in range(25):
            assert post_token(client, body).status_code == 200
        assert quarantine.size(redis) == 25
        assert quarantine.held_bytes(redis) == 25 * MiB
        assert redis.memory_usage(quarantine.STREAM) < 26 * MiB
        (entry,) = quarantine.entries(redis, count=1)
        assert entry.cut and entry.summary()["size"] == 4 * MiB - 1

    def test_oldest_entries_are_dropped_past_the_bounds(self, redis, client, monkeypatch):
        """With room for 8 MiB, 25 bodies of 1 MiB keep the newest 8, and 17 are counted."""
        monkeypatch.setenv("WASTATUS_QUARANTINE_BYTES", str(8 * MiB))
        before = counters.QUARANTINE_DROPPED._value.get()
        for n in range(25):
            assert post_token(client, b"%02d" % n + b"x" * (MiB - 2)).status_code == 200
        assert quarantine.size(redis) == 8
        assert quarantine.held_bytes(redis) == 8 * MiB
        assert redis.memory_usage(quarantine.STREAM) < 9 * MiB
        assert [e.body[:2] for e in quarantine.entries(redis)] == [
            b"%02d" % n for n in range(17, 25)
        ]
        assert counters.QUARANTINE_DROPPED._value.get() - before == 17

    def test_entry_count_is_bounded(self, redis, client, monkeypatch):
        """WASTATUS_QUARANTINE_MAX bounds the entries whatever their size."""
        monkeypatch.setenv("WASTATUS_QUARANTINE_MAX", "5")
        for _ in range(12):
            post_token(client, b"not json")
        assert quarantine.size(redis) == 5

    def test_a_cut_body_is_not_replayed(self, redis, client, monkeypatch):
        """A body kept cut cannot be read whole again, so replay refuses it and keeps it."""
        monkeypatch.setenv("WASTATUS_QUARANTINE_BODY_MAX", "300")
        post_token(client, b"y" * 1000)
        (entry,) = quarantine.entries(redis)
        result = quarantine.replay(redis, entry)
        assert not result.replayed and "not replayable" in result.problems[0]
        assert quarantine.size(redis) == 1

    def test_replay_gives_the_bytes_back(self, redis, client):
        """A replayed entry's bytes leave the total with it."""
        post_token(client, b'{"statuses": [{"id": "w", "status": "failed"}]}')
        (entry,) = quarantine.entries(redis)
        assert quarantine.held_bytes(redis) == len(entry.body)
        fixed = quarantine.Quarantined(entry.id, entry.received_at, entry.auth, [], b"{}")
        quarantine.remove(redis, fixed)
        assert quarantine.size(redis) == 0 and quarantine.held_bytes(redis) == 0


class TestDeadLetterBounds:
    """Dead letters expire after their retention, are capped, and keep one copy of a sample."""

    def test_cap_keeps_the_newest(self, redis, monkeypatch):
        """Past WASTATUS_DEAD_MAX the oldest dead letters go."""
        monkeypatch.setenv("WASTATUS_DEAD_MAX", "10")
        ids = [deadletters.put(redis, "event", {"n": n}, "poison") for n in range(30)]
        assert [entry.id for entry in deadletters.entries(redis)] == ids[-10:]
        assert redis.hlen(deadletters.DEAD) == 10

    def test_retention_removes_old_ones(self, redis, monkeypatch):
        """Letters older than WASTATUS_DEAD_RETENTION are removed; the keys expire after it."""
        monkeypatch.setenv("WASTATUS_DEAD_RETENTION", "30d")
        old = [deadletters.put(redis, "event", {"n": n}, "poison") for n in range(3)]
        month_ago = time.time() - 31 * 86400
        redis.zadd(deadletters.INDEX, dict.fromkeys(old, month_ago))
        new = deadletters.put(redis, "event", {"n": 3}, "poison")
        assert [entry.id for entry in deadletters.entries(redis)] == [new]
        assert redis.hlen(deadletters.DEAD) == 1
        assert 29 * 86400 < redis.ttl(deadletters.DEAD) <= 30 * 86400 + 1

    def test_dead_alert_keeps_its_sample_once_and_replays(self, redis, receiver, monkeypatch):
        """A dead notification's sample is kept as the alert's items only; replay rebuilds it."""
        monkeypatch.setenv("WASTATUS_ALERT_WEBHOOK_URL", receiver.url + "/hook")
        monkeypatch.setenv("WASTATUS_ALERT_ATTEMPTS", "1")
        monkeypatch.delenv("WASTATUS_RULES", raising=False)
        monkeypatch.delenv("WASTATUS_ALERT_URLS", raising=False)
        receiver.default = Reply(500)
        groups.submit(redis, enriched(131049, 3), route())
        drive(redis, lambda: deadletters.count(redis) == 1)
        (dead,) = deadletters.entries(redis)
        assert "sample" not in dead.item["state"]
        raw = redis.hget(deadletters.DEAD, dead.id)
        assert raw.count(b"wamid.TEST") == 3  # each sampled event once
        receiver.default = Reply(200)
        replay(redis, dead.id)
        drive(redis, lambda: any(r.status == 200 for r in receiver.requests))
        delivered = [r.json() for r in receiver.requests if r.status == 200][-1]
        assert len(delivered["alerts"]) == 3

    def test_an_event_with_100_kb_of_details_is_buried_small(self, redis, client, monkeypatch):
        """A poison event whose webhook had 100 KB of details costs a few KB as a dead letter."""
        monkeypatch.setenv("WASTATUS_DRAIN_MAX_DELIVERIES", "1")
        error = {"code": 131026, "error_data": {"details": "D" * 100_000}}
        status = {"id": "wamid.BIG", "status": "failed", "timestamp": "1", "errors": [error]}
        assert post_token(client, json.dumps({"statuses": [status]}).encode()).status_code == 200
        item = redis.rpop(intake.INBOX)
        token = "test-token"
        redis.rpush(drain.PROCESSING_PREFIX + token, item)
        drain._bury(redis, token, item, 1)
        (dead,) = deadletters.entries(redis)
        assert len(redis.hget(deadletters.DEAD, dead.id)) < 5000


class TestAlertSampleBounds:
    """A group's sample holds at most 20 trimmed items, however long the reported text."""

    def test_sample_bytes_are_bounded(self, redis):
        """50 events whose reported text is 100 KB each keep a sample of under 100 KB."""
        events = enriched(131026, 50)
        for event in events:
            event["catalog"]["reported"] = {
                key: key[0] * 100_000 for key in ("title", "message", "details", "href")
            }
        groups.submit(redis, events, route(group_wait=3600.0), settings=read({}))
        (group,) = groups.open_groups(redis)
        sample = groups.sample_key(group["id"])
        assert redis.llen(sample) == groups.SAMPLE_SIZE
        assert redis.memory_usage(sample) < 100_000


class TestMetricCardinality:
    """Unknown field names and uncatalogued codes fold into "other": /metrics stays small."""

    def test_random_field_names_do_not_grow_metrics(self, redis, client):
        """Two signed bodies of 2,000 random field names add one series, not 4,000."""
        before = len(client.get("/metrics").data)
        rng = random.Random(7)
        for _ in range(2):
            changes = [{"field": f"f{rng.getrandbits(64):x}", "value": {}} for _ in range(2000)]
            body = json.dumps(
                {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": changes}]}
            ).encode()
            reply = client.post(
                "/webhook", data=body, headers={"X-Hub-Signature-256": sign(body, APP_SECRET)}
            )
            assert reply.status_code == 200
        text = client.get("/metrics").get_data(as_text=True)
        assert len(text) - before < 2000
        assert 'wastatus_webhook_fields_ignored_total{field="other"}' in text

    def test_uncatalogued_codes_fold_into_other(self, redis, monkeypatch, redis_url, tmp_path):
        """500 distinct unknown codes add one exported series, not 500."""
        rules = tmp_path / "rules.yaml"
        rules.write_text("routes:\n  - name: drop-all\n    action: drop\n")
        monkeypatch.setenv("WASTATUS_RULES", str(rules))
        monkeypatch.setenv("REDIS_URL", redis_url)
        events = []
        for code in range(900_000_000, 900_000_500):
            event = {
                "kind": "status",
                "api": "cloud",
                "message_id": f"w{code}",
                "status": "failed",
                "timestamp": 1,
                "errors": [{"code": code}],
                "received_at": time.time(),
            }
            event["event_id"] = intake.event_id(event)
            events.append(event)
        intake.store(redis, events)
        drain.drain_inbox()
        metrics.export(redis)
        series = [key for key in redis.hkeys(metrics.EXPORT_KEY) if b"wastatus_failures" in key]
        assert not [key for key in series if b'"code":"9000' in key]
        assert sum(b'"code":"other"' in key for key in series) == 1


class TestSilenceRetention:
    """An expired silence and its count are removed after WASTATUS_SILENCE_RETENTION."""

    def test_expired_silence_and_count_are_purged(self, redis, monkeypatch):
        """A week after its end, neither the silence nor its count is kept."""
        monkeypatch.setenv("WASTATUS_SILENCE_RETENTION", "7d")
        silence = silences.add(redis, {"code": 131049}, time.time() + 60)
        redis.hincrby(silences.COUNTS, silence["id"], 5)
        assert silences.active(redis, settings=read({}), now=time.time() + 3 * 86400) == []
        assert redis.hlen(silences.SILENCES) == 1  # expired, still listed for a while
        silences.active(redis, settings=read({}), now=time.time() + 8 * 86400)
        assert redis.hlen(silences.SILENCES) == 0
        assert redis.hlen(silences.COUNTS) == 0


class TestRedisMemory:
    """The embedded Redis is bounded and never evicts: when full, webhooks get a 503."""

    def test_full_redis_is_a_503_then_recovers(self, make_redis_server, tmp_path):
        """At maxmemory (noeviction) a failure is answered 503 and nothing is half stored."""
        server = make_redis_server()
        client = redis_lib.Redis.from_url(server.url)
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        assert int(client.config_get("maxmemory")["maxmemory"]) == 1024 * MiB
        for n in range(4):
            client.set(f"filler:{n}", b"z" * MiB)
        limit = client.info("memory")["used_memory"] - MiB  # over it: as full as can be
        client.config_set("maxmemory", str(limit))
        with pytest.raises(redis_lib.exceptions.OutOfMemoryError):
            client.set("one-more", b"z")
        app = create_app(app_env(server.url))
        body = json.dumps(
            {
                "statuses": [
                    {
                        "id": "wamid.FULL",
                        "status": "failed",
                        "timestamp": "1",
                        "errors": [{"code": 131026}],
                    }
                ]
            }
        )
        reply = post_token(app.test_client(), body.encode())
        assert reply.status_code == 503 and reply.headers["Retry-After"]
        assert client.llen(intake.INBOX) == 0 and not client.keys(intake.SEEN_PREFIX + "*")
        client.config_set("maxmemory", str(limit + 4 * MiB))
        assert post_token(app.test_client(), body.encode()).status_code == 200
        assert client.llen(intake.INBOX) == 1
        client.close()

    def test_metrics_and_status_show_memory(self, redis, client):
        """/metrics gives memory used, the limit and the size of the keys that grow."""
        post_token(client, b"not json")
        held = storage.memory(redis)
        assert held["used_bytes"] > 0 and held["largest"]["quarantine"] > 0
        text = client.get("/metrics").get_data(as_text=True)
        assert "wastatus_redis_memory_used_bytes " in text
        assert 'wastatus_redis_key_bytes{key="quarantine"}' in text


class TestHeldPerFailure:
    """What a failure keeps in Redis over the dedup window once alerted: at most 200 bytes."""

    def test_bytes_held_per_alerted_failure(self, redis, monkeypatch, redis_url):
        """10,000 failures taken and alerted hold under 200 bytes each (seen mark, ledger, the
        group a later delivered is linked to)."""
        monkeypatch.setenv("REDIS_URL", redis_url)
        monkeypatch.setenv("WASTATUS_GROUP_WAIT", "0")
        monkeypatch.setenv("WASTATUS_GROUP_INTERVAL", "1s")
        for name in ("WASTATUS_RULES", "WASTATUS_RETRY_URL", "WASTATUS_ALERT_WEBHOOK_URL",
                     "WASTATUS_ALERT_URLS"):  # fmt: skip
            monkeypatch.delenv(name, raising=False)

        def failures(first: int, count: int) -> list[dict]:
            found = []
            for n in range(first, first + count):
                event = {"kind": "status", "api": "on_premises", "message_id": f"gBGG{n:012d}",
                         "recipient_id": f"8190{n:08d}", "status": "failed",
                         "timestamp": 1700000000, "errors": [{"code": 131026}],
                         "received_at": time.time()}  # fmt: skip
                event["event_id"] = intake.event_id(event)
                found.append(event)
            return found

        total = 10_000
        intake.store(redis, failures(0, 10))  # the fixed parts: queues, the group, scripts
        drive(redis, lambda: ledger.summary(redis)["outcomes"]["alerted"] == 10)
        before = redis.info("memory")["used_memory"]
        for first in range(10, total + 10, 1000):
            intake.store(redis, failures(first, 1000))
        drive(redis, lambda: ledger.summary(redis)["outcomes"]["alerted"] == total + 10, 120)
        held = (redis.info("memory")["used_memory"] - before) / total
        remembered = sum(
            redis.hlen(key)
            for key in redis.scan_iter(match=late.ALERTED_PREFIX + "*")
            if not key.endswith(late.GROUPS_SUFFIX.encode())
        )
        assert remembered == total + 10, "the late-delivered record is part of what is held"
        assert held < 200, f"{held:.0f} bytes held per failure"
