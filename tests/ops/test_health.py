"""/healthz and /readyz on a real Redis: answers, backlog limit, Redis stopped and restarted."""

from __future__ import annotations

import os
import time

from tests.conftest import app_env
from tests.ops.conftest import cloud_status
from webhook import create_app
from workers.inbox import intake
from workers.resend import schedule


class TestHealthz:
    def test_answers_with_the_process_id(self, client):
        """/healthz answers 200 JSON naming the process, without touching Redis."""
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.get_json() == {"ok": True, "pid": os.getpid()}

    def test_answers_while_redis_is_unreachable(self):
        """A Redis outage does not fail /healthz: restarting the process would not help."""
        app = create_app(app_env("redis://127.0.0.1:1/0"))
        assert app.test_client().get("/healthz").status_code == 200


class TestReadyz:
    def test_ready_with_an_empty_backlog(self, client):
        """With Redis up and nothing waiting, /readyz answers 200 with the backlog per queue."""
        response = client.get("/readyz")
        assert response.status_code == 200
        body = response.get_json()
        assert body["ok"] is True and body["backlog"] == 0 and body["max_backlog"] == 100_000
        assert body["waiting"] == {"inbox": 0, "resends-due": 0, "wastatus-events": 0,
                                   "wastatus-retry": 0, "wastatus-alerts": 0}  # fmt: skip

    def test_counts_stored_events_and_queued_jobs(self, client, post):
        """A stored failure is one inbox event plus the drain job queued for it."""
        assert post.signed(cloud_status()).status_code == 200
        body = client.get("/readyz").get_json()
        assert body["waiting"]["inbox"] == 1 and body["waiting"]["wastatus-events"] == 1
        assert body["backlog"] == 2

    def test_counts_resends_due_now_not_those_due_later(self, redis, client):
        """Resends are items, not jobs: those due now are backlog, those due tomorrow are not."""
        now = time.time()
        redis.zadd(schedule.DUE, {"due-1": now - 5, "due-2": now - 1, "tomorrow": now + 86400})
        body = client.get("/readyz").get_json()
        assert body["waiting"]["resends-due"] == 2 and body["backlog"] == 2

    def test_not_ready_when_the_backlog_passes_the_limit(self, redis, redis_url):
        """Above WASTATUS_READY_MAX_BACKLOG /readyz answers 503 backlog-too-large with figures."""
        app = create_app(app_env(redis_url, WASTATUS_READY_MAX_BACKLOG="3"))
        client = app.test_client()
        redis.lpush(intake.INBOX, *["{}"] * 3)
        assert client.get("/readyz").status_code == 200
        redis.lpush(intake.INBOX, "{}")
        response = client.get("/readyz")
        assert response.status_code == 503
        body = response.get_json()
        assert body["error"] == "backlog-too-large" and body["message"]
        assert body["backlog"] == 4 and body["max_backlog"] == 3

    def test_flips_to_503_when_redis_stops_and_back_when_it_restarts(self, make_redis_server):
        """Redis stopped: 503 redis-unavailable; the same app is ready again after a restart."""
        server = make_redis_server()
        client = create_app(app_env(server.url)).test_client()
        assert client.get("/readyz").status_code == 200
        server.stop()
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["error"] == "redis-unavailable"
        assert response.get_json()["reason"]
        server.start()
        assert client.get("/readyz").status_code == 200

    def test_not_ready_without_any_redis_configured(self):
        """No REDIS_URL and no `wastatus up` data dir: 503 saying Redis is unavailable."""
        client = create_app(app_env(None)).test_client()
        response = client.get("/readyz")
        assert response.status_code == 503
        assert "REDIS_URL" in response.get_json()["reason"]
