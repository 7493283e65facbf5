"""Redis Sentinel: the app, the CLI and the workers find the master through real sentinels."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis as redis_lib
from redis.sentinel import SentinelConnectionPool

from tests.conftest import Poster, app_env, work
from tests.ops.conftest import cloud_status
from webhook import create_app
from webhook.cli.redis_server import free_port, redis_server_binary
from workers.connection import connect
from workers.inbox import intake
from workers.settings import read


@pytest.fixture
def sentinel(make_redis_server, tmp_path: Path):
    """A master and one sentinel (quorum 1) monitoring it as `mymaster`, both on loopback."""
    master = make_redis_server()
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n")  # fmt: skip
    process = subprocess.Popen([redis_server_binary(), str(conf), "--sentinel"],
                               stdout=subprocess.DEVNULL)  # fmt: skip
    client = redis_lib.Redis(port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 10
    while True:
        try:
            if client.sentinel_get_master_addr_by_name("mymaster"):
                break
        except redis_lib.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the sentinel did not start")
        time.sleep(0.05)
    client.close()
    yield master, port
    process.terminate()
    process.wait(10)


def sentinel_env(port: int) -> dict[str, str]:
    return app_env(None, WASTATUS_REDIS_SENTINELS=f"127.0.0.1:{port}",
                   WASTATUS_REDIS_SENTINEL_MASTER="mymaster")  # fmt: skip


class TestSentinelAddresses:
    def test_parses_hosts_ports_and_the_default_port(self):
        """Comma-separated host:port pairs; a bare host gets Sentinel's port 26379."""
        sentinels = read({"WASTATUS_REDIS_SENTINELS": "a:1, b ,[::1]:3"}).redis_sentinels
        assert sentinels == (("a", 1), ("b", 26379), ("::1", 3))


class TestSentinel:
    def test_connect_asks_the_sentinels_for_the_master(self, sentinel):
        """Without REDIS_URL the client is a sentinel-managed client of the master."""
        master, port = sentinel
        connection = connect(None, read(sentinel_env(port)))
        assert isinstance(connection.connection_pool, SentinelConnectionPool)
        connection.set("wastatus:test", "via-sentinel")
        assert redis_lib.Redis(port=master.port).get("wastatus:test") == b"via-sentinel"

    def test_webhook_and_workers_run_through_the_sentinels(self, sentinel):
        """A failure posted to an app configured with sentinels is stored, worked and ready."""
        master, port = sentinel
        app = create_app(sentinel_env(port))
        assert Poster(app.test_client()).signed(cloud_status()).status_code == 200
        direct = redis_lib.Redis(port=master.port)
        assert direct.llen(intake.INBOX) == 1
        assert app.test_client().get("/readyz").status_code == 200
        work(connect(None, read(sentinel_env(port))))
        assert direct.llen(intake.INBOX) == 0
