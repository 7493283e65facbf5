"""HeldScript: the webhook's one Redis call, over connections it keeps, on a real Redis."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis as redis_lib

from workers.inbox.held_script import HeldScript

COUNT_AND_ECHO = """
redis.call('INCR', KEYS[1])
return {tonumber(redis.call('GET', KEYS[1])), ARGV[1]}
"""


@pytest.fixture
def script(redis):
    held = HeldScript(redis, COUNT_AND_ECHO)
    yield held
    held.close()


def client_ids(redis) -> set[int]:
    return {client["id"] for client in redis.client_list()}


class TestHeldScript:
    def test_runs_the_script_with_keys_and_args(self, script, redis):
        assert script(["counter"], ["hello"]) == [1, b"hello"]
        assert script(["counter"], ["again"]) == [2, b"again"]
        assert redis.get("counter") == b"2"

    def test_keeps_one_connection_for_calls_in_a_row(self, script, redis):
        script(["counter"], ["a"])
        before = client_ids(redis)
        for _ in range(20):
            script(["counter"], ["a"])
        assert client_ids(redis) == before

    def test_loads_the_script_again_after_redis_forgot_it(self, script, redis):
        """After a restart or SCRIPT FLUSH, EVALSHA answers NOSCRIPT; the call still runs."""
        script(["counter"], ["a"])
        redis.script_flush()
        assert script(["counter"], ["b"]) == [2, b"b"]
        assert redis.script_exists(script.sha) == [True]

    def test_a_killed_connection_is_replaced_within_the_call(self, script, redis):
        """A stale kept connection (Redis restarted, or the client was killed) is retried once."""
        script(["counter"], ["a"])
        mine = client_ids(redis) - {redis.client_id()}
        for client_id in mine:
            redis.client_kill_filter(_id=client_id)
        assert script(["counter"], ["b"]) == [2, b"b"]

    def test_a_script_error_reaches_the_caller_and_the_next_call_works(self, script, redis):
        redis.set("counter", "not a number")
        with pytest.raises(redis_lib.ResponseError):
            script(["counter"], ["a"])
        redis.set("counter", 5)
        assert script(["counter"], ["b"]) == [6, b"b"]

    def test_an_unreachable_redis_raises_connection_error(self):
        from webhook.cli.redis_server import free_port

        client = redis_lib.Redis(port=free_port(), socket_connect_timeout=0.5)
        with pytest.raises(redis_lib.ConnectionError):
            HeldScript(client, COUNT_AND_ECHO)(["counter"], ["a"])


class TestHeldScriptInThreads:
    """granian runs the app in several threads of a process: they share one HeldScript."""

    def test_concurrent_calls_each_get_their_own_reply(self, script, redis):
        """No connection serves two threads at once: a shared one would cross the replies."""
        threads, calls = 8, 300
        start = threading.Barrier(threads)

        def call(thread: int) -> list[bytes]:
            start.wait()
            return [script(["counter"], [f"{thread}-{n}"])[1] for n in range(calls)]

        with ThreadPoolExecutor(threads) as pool:
            replies = list(pool.map(call, range(threads)))
        for thread, got in enumerate(replies):
            assert got == [f"{thread}-{n}".encode() for n in range(calls)]
        assert int(redis.get("counter")) == threads * calls
        assert 1 < len(script._idle) <= threads  # the calls overlapped, each on its own
