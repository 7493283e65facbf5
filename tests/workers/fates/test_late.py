"""Out-of-order safety through the real endpoint, workers and receiver: a delivered or read
that arrives after its failure was alerted shows in the group's next notification."""

from __future__ import annotations

import threading

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


class TestForEveryone:
    """With message tracking off (the default) a later delivered still shows in the group,
    through the real endpoint and a real worker, counted once across web processes."""

    @pytest.fixture
    def untracked(self, redis, redis_url, receiver, monkeypatch):
        monkeypatch.delenv("WASTATUS_TRACK_MESSAGES", raising=False)
        hook = alerts_to(receiver, monkeypatch, GROUP_INTERVAL="1s")
        apps = [create_app(app_env(redis_url)) for _ in range(2)]  # two web processes
        yield hook, [Poster(app.test_client()) for app in apps], apps
        for app in apps:
            app.extensions["wastatus"].funnel.close()

    def test_one_of_n_later_reported_delivered(self, redis, untracked):
        hook, (post, _), (app, _) = untracked
        failed = [status(f"wamid.U{i}", "failed", code=131026) for i in range(3)]
        assert post.signed(body(*failed)).status_code == 200
        drive(redis, lambda: len(hook.requests) == 1)
        gid = hook.requests[0].json()["group_id"]
        assert post.signed(body(status("wamid.U2", "delivered"))).status_code == 200
        assert app.extensions["wastatus"].funnel.flush()
        assert late.later_delivered(redis, gid) == 1
        assert post.signed(body(status("wamid.U3", "failed", code=131026))).status_code == 200
        drive(redis, lambda: len(hook.requests) == 2)
        update = hook.requests[1].json()
        assert update["later_delivered"] == 1 and update["count"] == 4
        assert "1 of 4 later reported delivered or read" in text.body(update, "en")

    def test_two_web_processes_count_a_message_once(self, redis, untracked):
        """Both flush the same wamid's read at the same moment: the group counts it once."""
        hook, posts, apps = untracked
        assert posts[0].signed(body(status("wamid.T0", "failed", code=131026))).status_code == 200
        drive(redis, lambda: len(hook.requests) == 1)
        gid = hook.requests[0].json()["group_id"]
        for post in posts:
            assert post.signed(body(status("wamid.T0", "read"))).status_code == 200
        start = threading.Barrier(2)

        def flush(app) -> None:
            start.wait()
            assert app.extensions["wastatus"].funnel.flush()

        threads = [threading.Thread(target=flush, args=(app,)) for app in apps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert late.later_delivered(redis, gid) == 1
        assert redis.scard(groups.group_hash(gid) + late.LATER_SUFFIX) == 1

    def test_the_record_is_small_and_keyed_by_digest(self, redis, untracked):
        """An alerted failure leaves a 6-byte field and its group's day number, in a compact
        hash, and no copy of its wamid."""
        hook, (post, _), _apps = untracked
        assert post.signed(body(status("wamid.S0", "failed", code=131026))).status_code == 200
        drive(redis, lambda: len(hook.requests) == 1)
        keys = set(redis.scan_iter(match=late.ALERTED_PREFIX + "*"))
        (numbers,) = [key for key in keys if key.endswith(late.GROUPS_SUFFIX.encode())]
        (key,) = keys - {numbers}
        ((field, value),) = redis.hgetall(key).items()
        gid = hook.requests[0].json()["group_id"]
        assert len(field) == 6 and redis.hget(numbers, value).decode() == gid
        assert redis.object("encoding", key) in (b"ziplist", b"listpack")
        assert 2 * 86400 < redis.ttl(key) <= 3 * 86400


class TestShardBound:
    """A shard keeps at most `SHARD_MAX` failures: a day's memory is bounded by count too."""

    def test_a_full_shard_takes_no_more(self, redis, monkeypatch):
        monkeypatch.setattr(late, "SHARDS", 1)
        monkeypatch.setattr(late, "SHARD_MAX", 5)
        with redis.pipeline(transaction=True) as pipe:
            late.remember(pipe, [(f"wamid.B{i}", "0123456789abcdef") for i in range(9)], 0.0)
            pipe.execute()
        (key,) = redis.scan_iter(match=late.ALERTED_PREFIX + "*:0")
        assert redis.hlen(key) == 5


class TestLookUp:
    """The flush's look-up reads in bounded chunks and finds an alerted failure in any one."""

    def test_a_failure_in_the_last_chunk_is_counted_once(self, redis, monkeypatch):
        monkeypatch.setattr(late, "LOOK_UP_CHUNK", 2)
        gid = "0123456789abcdef"
        redis.hset(groups.group_hash(gid), "count", 1)  # an open group
        with redis.pipeline(transaction=True) as pipe:
            late.remember(pipe, [("wamid.LAST", gid)], 1_800_000_000.0)
            pipe.execute()
        wamids = [f"wamid.N{i}" for i in range(4)] + ["wamid.LAST"]
        for _ in range(2):
            with redis.pipeline(transaction=False) as pipe:
                lookup = late.look_up(pipe, wamids, 1_800_000_000.0 + 86400)  # the next day
                replies = pipe.execute()
            assert len(lookup.chunks) == 3
            late.mark(redis, lookup, replies)
        assert late.later_delivered(redis, gid) == 1
