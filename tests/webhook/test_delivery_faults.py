"""What Meta's delivery does to us: racing duplicates, Redis outages, oversized bodies."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from werkzeug.serving import make_server

from tests.conftest import APP_SECRET, app_env, load_fixture
from webhook import create_app
from webhook.signature import sign
from workers.inbox import intake

FAILED = load_fixture("cloud/failed_131049.json")


@pytest.fixture
def served(redis_url, redis):
    """The app on a real threaded HTTP server on loopback."""
    server = make_server("127.0.0.1", 0, create_app(app_env(redis_url)), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def signed_post(url: str, body: bytes):
    headers = {"X-Hub-Signature-256": sign(body, APP_SECRET)}
    return requests.post(f"{url}/webhook", data=body, headers=headers, timeout=10)


class TestConcurrentDuplicates:
    def test_twenty_racing_deliveries_store_one_event(self, served, redis):
        """Twenty simultaneous copies of one failure over HTTP: all 200, one event stored."""
        barrier = threading.Barrier(20)

        def deliver(_):
            barrier.wait()
            return signed_post(served, FAILED)

        with ThreadPoolExecutor(20) as pool:
            replies = list(pool.map(deliver, range(20)))
        assert [reply.status_code for reply in replies] == [200] * 20
        assert sum(reply.json()["stored"] for reply in replies) == 1
        assert sum(reply.json()["duplicates"] for reply in replies) == 19
        assert redis.llen(intake.INBOX) == 1


class TestRedisOutage:
    def test_answers_503_while_redis_is_down_and_takes_the_retry(self, make_redis_server):
        """Redis stopped: 503 so Meta retries, nothing claimed; restarted: the retry is taken."""
        server = make_redis_server()
        client = create_app(app_env(server.url)).test_client()
        headers = {"X-Hub-Signature-256": sign(FAILED, APP_SECRET)}
        server.stop()

        down = client.post("/webhook", data=FAILED, headers=headers)
        assert down.status_code == 503
        assert down.json["error"] == "storage-unavailable"
        assert down.headers["Retry-After"]

        server.start()
        again = client.post("/webhook", data=FAILED, headers=headers)
        assert again.status_code == 200
        assert again.json["stored"] == 1
        assert server_inbox(server.url) == 1

    def test_statuses_that_did_not_fail_are_still_answered(self, make_redis_server):
        """A delivered status needs no Redis, so an outage does not make Meta retry it."""
        server = make_redis_server()
        client = create_app(app_env(server.url)).test_client()
        server.stop()
        body = load_fixture("cloud/sent_marketing.json")
        reply = client.post(
            "/webhook", data=body, headers={"X-Hub-Signature-256": sign(body, APP_SECRET)}
        )
        assert reply.status_code == 200


def server_inbox(url: str) -> int:
    import redis as redis_lib

    client = redis_lib.Redis.from_url(url)
    try:
        return client.llen(intake.INBOX)
    finally:
        client.close()


class TestBodySize:
    def test_a_body_over_the_limit_gets_413(self, redis_url, redis):
        """WASTATUS_MAX_BODY bounds what is read; the reply is the JSON error shape."""
        client = create_app(app_env(redis_url, WASTATUS_MAX_BODY="1024")).test_client()
        body = json.dumps({"statuses": [], "padding": "x" * 2000}).encode()
        reply = client.post(
            "/webhook", data=body, headers={"X-Hub-Signature-256": sign(body, APP_SECRET)}
        )
        assert reply.status_code == 413
        assert reply.json["error"] == "body-too-large"
        assert redis.dbsize() == 0

    def test_a_chunked_body_over_the_limit_gets_413(self, redis_url, redis):
        """A body without Content-Length is cut off at the limit too, over real HTTP."""
        app = create_app(app_env(redis_url, WASTATUS_MAX_BODY="1024"))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            chunks = (b"x" * 512 for _ in range(8))  # a generator makes requests send chunked
            reply = requests.post(
                f"http://127.0.0.1:{server.server_port}/webhook", data=chunks, timeout=10
            )
            assert reply.status_code == 413
        finally:
            server.shutdown()
            thread.join()

    def test_the_default_limit_takes_a_3_mb_payload(self, post, redis):
        """Meta sends up to 3 MB; the 4 MiB default takes it."""
        body = json.loads(FAILED)
        body["padding"] = "x" * (3 * 1024 * 1024)
        assert post.signed(body).status_code == 200
