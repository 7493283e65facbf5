"""The console's security rules, through Flask's test client on a real Redis."""

from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import app_env
from tests.console.conftest import PASSWORD, TOKEN, csrf_of, fail, log_in
from webhook import create_app
from webhook.console import auth
from workers.settings import SettingsError, read


class TestOffUnlessConfigured:
    """Without console users or token, neither the pages nor the API exist."""

    def test_no_console_without_credentials(self, redis, redis_url):
        client = create_app(app_env(redis_url)).test_client()
        assert client.get("/console/").status_code == 404
        assert client.get("/api/v1/groups").status_code == 404

    def test_the_token_alone_opens_the_api_not_the_pages(self, redis, redis_url):
        client = create_app(app_env(redis_url, WASTATUS_CONSOLE_TOKEN=TOKEN)).test_client()
        assert client.get("/console/login").status_code == 404
        assert client.get("/api/v1/groups").status_code == 401
        reply = client.get("/api/v1/groups", headers={"Authorization": f"Bearer {TOKEN}"})
        assert reply.status_code == 200

    def test_users_without_a_secret_are_refused_at_start(self):
        with pytest.raises(SettingsError, match="WASTATUS_CONSOLE_SECRET"):
            read({"WASTATUS_CONSOLE_USERS": "alice:" + auth.hash_password("x")})


class TestNoSession:
    """A caller with no session or token gets a redirect (pages) or a 401 (API)."""

    def test_pages_redirect_to_login(self, anonymous):
        reply = anonymous.get("/console/silences")
        assert reply.status_code == 302
        assert reply.headers["Location"].startswith("/console/login?next=/console/silences")

    def test_api_answers_401_in_the_error_table_s_shape(self, anonymous):
        reply = anonymous.get("/api/v1/groups")
        assert reply.status_code == 401
        assert reply.json["error"] == "console-unauthorized"

    def test_a_wrong_token_is_401(self, anonymous):
        reply = anonymous.get("/api/v1/groups", headers={"Authorization": "Bearer " + "x" * 40})
        assert reply.status_code == 401

    def test_the_token_opens_the_api_without_csrf(self, anonymous):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert anonymous.get("/api/v1/groups", headers=headers).status_code == 200
        reply = anonymous.post(
            "/api/v1/silences",
            headers=headers,
            json={"matchers": {"code": 131049}, "duration": "1h"},
        )
        assert reply.status_code == 201


class TestSessionCookie:
    """The session cookie is signed, Secure, HttpOnly and SameSite=Lax; the webhook sets none."""

    def test_cookie_flags(self, anonymous):
        page = anonymous.get("/console/login").get_data(as_text=True)
        reply = anonymous.post(
            "/console/login",
            data={"username": "alice", "password": PASSWORD, "csrf_token": csrf_of(page)},
        )
        cookie = reply.headers["Set-Cookie"]
        assert "wastatus_console=" in cookie
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie

    def test_a_forged_cookie_is_no_session(self, anonymous):
        anonymous.set_cookie("wastatus_console", '{"user": "alice"}', domain="localhost")
        assert anonymous.get("/api/v1/groups").status_code == 401

    def test_the_webhook_never_sets_a_cookie(self, anonymous, redis):
        fail(anonymous, redis)
        reply = anonymous.get("/healthz")
        assert "Set-Cookie" not in reply.headers


class TestCsrf:
    """A state change from a session without its CSRF token is refused with 403."""

    def test_api_change_without_token(self, browser):
        reply = browser.post("/api/v1/silences", json={"matchers": {"code": 131049}})
        assert reply.status_code == 403 and reply.json["error"] == "csrf-invalid"

    def test_api_change_with_token(self, browser):
        reply = browser.post(
            "/api/v1/silences",
            json={"matchers": {"code": 131049}},
            headers={"X-CSRFToken": browser.csrf},
        )
        assert reply.status_code == 201

    def test_form_without_token(self, browser, redis):
        reply = browser.post(
            "/console/silences", data={"matchers": "code=131049", "duration": "2h"}
        )
        assert reply.status_code == 403
        assert redis.hlen("wastatus:silences") == 0

    def test_login_form_without_token(self, anonymous):
        reply = anonymous.post("/console/login", data={"username": "alice", "password": PASSWORD})
        assert reply.status_code == 403


class TestLoginLimit:
    """Wrong passwords are limited per client address; then even the right one waits."""

    def test_wrong_passwords_then_blocked(self, anonymous):
        for _ in range(auth.LOGIN_FAILURES_MAX):
            assert log_in(anonymous, "wrong").status_code == 401
        assert log_in(anonymous, "wrong").status_code == 429
        assert log_in(anonymous).status_code == 429
        assert anonymous.get("/api/v1/groups").status_code == 401

    def test_an_unknown_user_is_a_failure_too(self, anonymous):
        page = anonymous.get("/console/login").get_data(as_text=True)
        reply = anonymous.post(
            "/console/login",
            data={"username": "mallory", "password": PASSWORD, "csrf_token": csrf_of(page)},
        )
        assert reply.status_code == 401

    def test_login_redirects_only_inside_the_console(self, anonymous):
        page = anonymous.get("/console/login").get_data(as_text=True)
        reply = anonymous.post(
            "/console/login?next=https://evil.example/",
            data={"username": "alice", "password": PASSWORD, "csrf_token": csrf_of(page)},
        )
        assert reply.headers["Location"] == "/console/"


class TestAudit:
    """Every state change is logged with who made it."""

    def test_silence_created_and_expired_are_logged_with_the_user(self, browser, caplog):
        with caplog.at_level(logging.INFO, logger="wastatus.console"):
            created = browser.post(
                "/api/v1/silences",
                json={"matchers": {"code": 131049}},
                headers={"X-CSRFToken": browser.csrf},
            ).json
            sid = created["silence"]["id"]
            browser.post(f"/api/v1/silences/{sid}/expire", headers={"X-CSRFToken": browser.csrf})
        events = [(r.getMessage(), r.fields) for r in caplog.records]
        made = [f for name, f in events if name == "console.silence.created"]
        ended = [f for name, f in events if name == "console.silence.expired"]
        assert made[0]["user"] == "alice" and made[0]["silence"] == sid
        assert ended[0]["user"] == "alice" and ended[0]["silence"] == sid
        assert json.dumps(made[0]["matchers"]) == json.dumps({"code": [131049]})


class TestMasking:
    """Recipients are masked on the pages and in the API unless WASTATUS_LOG_PII."""

    def test_masked(self, browser, redis):
        fail(browser, redis, recipient="818012345678")
        gid = browser.get("/api/v1/groups").json["groups"][0]["id"]
        page = browser.get(f"/console/groups/{gid}").get_data(as_text=True)
        assert "818012345678" not in page and "5678" in page
        assert (
            browser.get(f"/api/v1/groups/{gid}").json["events"][0]["recipient_id"].endswith("*5678")
        )
