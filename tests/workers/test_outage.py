"""The retry policy of a worker's own connection (`workers.outage`), against a real Redis that
the test stops and starts again."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest
import redis as redis_lib

from workers.outage import WaitingRetry, _demoted, outage_of, wait_for_redis


@pytest.fixture
def server(make_redis_server):
    return make_redis_server()


def waiting_client(url: str) -> redis_lib.Redis:
    client = redis_lib.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=2)
    wait_for_redis(client)
    return client


def events(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "wastatus.worker"]


class TestWaitingRetry:
    """A command waits while Redis is away and says so once each way."""

    def test_a_command_waits_until_redis_is_back(self, server, caplog):
        """SET sent while Redis is stopped returns once it is started again, and lands."""
        caplog.set_level(logging.INFO, logger="wastatus.worker")
        client = waiting_client(server.url)
        client.ping()
        server.stop()
        threading.Timer(2.0, server.start).start()
        started = time.monotonic()
        client.set("wastatus:test:outage", "kept")
        waited = time.monotonic() - started
        assert waited >= 1.5
        assert client.get("wastatus:test:outage") == b"kept"
        assert events(caplog) == ["redis.unreachable", "redis.reachable"]
        assert outage_of(client).take_recovery() is True
        assert outage_of(client).take_recovery() is False
        client.close()

    def test_a_stopping_process_does_not_wait(self, server):
        """Once the worker stops, a command fails at once as redis-py's would."""
        client = waiting_client(server.url)
        outage_of(client).stopping = True
        server.stop()
        started = time.monotonic()
        with pytest.raises(redis_lib.ConnectionError):
            client.ping()
        assert time.monotonic() - started < 2
        client.close()

    def test_a_forked_process_does_not_wait(self, server):
        """A work horse (forked) meets the outage as a failure: its writes are never resent."""
        client = waiting_client(server.url)
        client.ping()
        server.stop()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit status
            try:
                client.ping()
            except redis_lib.ConnectionError:
                os._exit(0)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        client.close()

    def test_every_connection_shares_one_policy(self, server):
        """redis-py copies the policy into each connection; they must share one outage."""
        client = waiting_client(server.url)
        retry = client.get_retry()
        connection = client.connection_pool.make_connection()
        assert isinstance(retry, WaitingRetry) and connection.retry is retry
        connection.disconnect()
        client.close()


class TestDemoted:
    """Only refusals from a replica are waited out; other errors go to the caller."""

    def test_read_only_and_unblocked_are_refusals_of_a_replica(self):
        """READONLY (a write) and UNBLOCKED (a blocking pop) mean a demoted master."""
        assert _demoted(redis_lib.exceptions.ReadOnlyError("You can't write"))
        assert _demoted(redis_lib.ResponseError("UNBLOCKED force unblock from blocking"))
        assert not _demoted(redis_lib.ResponseError("WRONGTYPE Operation against a key"))
