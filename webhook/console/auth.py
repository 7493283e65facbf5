"""Who may use the console and its API: logins, sessions, CSRF tokens, and the audit log.

The console can silence alerts and replay dead letters, so it is an admin tool: it answers only
when `WASTATUS_CONSOLE_USERS` or `WASTATUS_CONSOLE_TOKEN` is set. People log in with a user name
and password (werkzeug's salted hashes) and hold a signed session cookie (Flask's); scripts send
the console token as `Authorization: Bearer`. Every state change from a cookie session carries a
CSRF token (Flask-WTF's); a token caller has no cookie to be forged with. Failed logins are
counted in Redis per client address, so the limit holds across every web server process.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import redis
from flask import Flask, Request, current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import generate_csrf, validate_csrf
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import ValidationError

from webhook.errors import error_response
from workers.logs import log
from workers.settings import Settings

LOGGER = logging.getLogger("wastatus.console")

SESSION_HOURS = 12
"""How long a login lasts; a CSRF token lives as long."""

LOGIN_FAILURES_MAX = 5
LOGIN_WINDOW_SECONDS = 900
"""At most LOGIN_FAILURES_MAX failed logins per client address in LOGIN_WINDOW_SECONDS."""

LOGIN_FAILURES = "wastatus:console:login-failures:"

PREFIXES = ("/console", "/api/")
"""Paths that have a session; every other request (the webhook) never reads a cookie."""

_DUMMY_HASH = generate_password_hash("an unknown user takes as long as a known one")


class ConsoleSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, opened only under the console's paths: the webhook's
    hot path stays as it was (no cookie parsing, no signature check)."""

    def open_session(self, app: Flask, request: Request):  # type: ignore[override]
        if not request.path.startswith(PREFIXES):
            return None
        return super().open_session(app, request)


def init_app(app: Flask, settings: Settings) -> None:
    """Sessions and CSRF keyed by `WASTATUS_CONSOLE_SECRET`; cookies Secure, HttpOnly, Lax."""
    if settings.console_secret:
        app.secret_key = settings.console_secret
    app.session_interface = ConsoleSessions()
    app.config.update(
        SESSION_COOKIE_NAME="wastatus_console",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        # Lax, not Strict: a link in a chat alert must open the group's page logged in.
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=SESSION_HOURS * 3600,
        WTF_CSRF_TIME_LIMIT=SESSION_HOURS * 3600,
        WTF_CSRF_FIELD_NAME="csrf_token",
        WTF_CSRF_SSL_STRICT=False,  # behind a TLS proxy the Referer check adds nothing to SameSite
    )


def hash_password(password: str) -> str:
    """A salted hash for `WASTATUS_CONSOLE_USERS` (werkzeug's default method, scrypt)."""
    return generate_password_hash(password)


def check_user(settings: Settings, name: str, password: str) -> bool:
    """True when `password` is `name`'s; as slow for an unknown name as for a known one."""
    hashes = dict(settings.console_users)
    known = name in hashes
    matches = check_password_hash(hashes.get(name, _DUMMY_HASH), password)
    return known and matches


def check_token(settings: Settings, header: str | None) -> bool:
    """True when `header` is `Bearer <WASTATUS_CONSOLE_TOKEN>`, compared in constant time."""
    if not settings.console_token or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), settings.console_token.encode())


def _client() -> str:
    return request.remote_addr or "unknown"


def login_blocked(connection: redis.Redis) -> bool:
    """True when this client address has used up its failed logins for the window."""
    return int(connection.get(LOGIN_FAILURES + _client()) or 0) >= LOGIN_FAILURES_MAX


def login_failed(connection: redis.Redis) -> None:
    """Count a failed login against this client address for the window."""
    key = LOGIN_FAILURES + _client()
    with connection.pipeline() as pipe:
        # the window starts at the first failure (EXPIRE NX needs Redis 7)
        pipe.set(key, 0, ex=LOGIN_WINDOW_SECONDS, nx=True)
        pipe.incr(key)
        pipe.execute()


def login_succeeded(connection: redis.Redis, name: str) -> None:
    connection.delete(LOGIN_FAILURES + _client())
    session.clear()
    session.permanent = True
    session["user"] = name
    audit("console.login")


def who() -> str | None:
    """The caller: a logged-in user's name, "token" for the API token, or None."""
    return g.get("console_user")


def identify(settings: Settings) -> str | None:
    """Find the caller from the bearer token or the session cookie; kept in `g`."""
    if check_token(settings, request.headers.get("Authorization")):
        g.console_user, g.console_by_token = "token", True
    elif session.get("user") in dict(settings.console_users):
        g.console_user, g.console_by_token = session["user"], False
    else:
        g.console_user, g.console_by_token = None, False
    return g.console_user


def csrf_token() -> str:
    return generate_csrf()


def csrf_ok() -> bool:
    """A state change from a cookie session must carry the session's CSRF token (form field
    `csrf_token` or header `X-CSRFToken`); a bearer-token caller needs none."""
    if g.get("console_by_token"):
        return True
    token = request.form.get("csrf_token") or request.headers.get("X-CSRFToken")
    try:
        validate_csrf(token)
    except ValidationError:
        return False
    return True


def audit(event: str, **fields: Any) -> None:
    """Log a state change with who made it and from where."""
    log(LOGGER, event, user=who() or session.get("user"), client=_client(), **fields)


def _settings() -> Settings:
    return current_app.extensions["wastatus"].settings


BODY_MAX = 1 << 20
"""Bytes a console form or API request may carry (the app leaves bodies to each view)."""


def api_guard() -> Any:
    """The API's before_request: 401 without a caller, 403 for a state change without CSRF."""
    request.max_content_length = BODY_MAX
    if identify(_settings()) is None:
        return error_response("console-unauthorized")
    if request.method not in ("GET", "HEAD", "OPTIONS") and not csrf_ok():
        return error_response("csrf-invalid")
    return None


def page_guard() -> Any:
    """The pages' before_request: to the login page without a user, 403 without CSRF."""
    request.max_content_length = BODY_MAX
    if request.endpoint in ("console.login", "console.static"):
        if request.method == "POST" and not csrf_ok():
            return error_response("csrf-invalid")
        return None
    if identify(_settings()) is None:
        return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
    if request.method == "POST" and not csrf_ok():
        return error_response("csrf-invalid")
    return None
