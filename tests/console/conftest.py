"""The console's test app: users, token and secret configured; alerts flush at once."""

from __future__ import annotations

import re
import uuid

import pytest
from werkzeug.security import generate_password_hash

from tests.conftest import ONPREM_TOKEN, app_env, work
from webhook import create_app

PASSWORD = "correct horse battery staple"
TOKEN = "t" * 40
SECRET = "s" * 40
# pbkdf2 with few rounds: scrypt's cost would slow every login of the suite, not prove more
USERS = f"alice:{generate_password_hash(PASSWORD, 'pbkdf2:sha256:1000')}"


def console_env(redis_url: str, **overrides: str) -> dict[str, str]:
    return app_env(
        redis_url,
        WASTATUS_CONSOLE_USERS=USERS,
        WASTATUS_CONSOLE_TOKEN=TOKEN,
        WASTATUS_CONSOLE_SECRET=SECRET,
        WASTATUS_GROUP_WAIT="0",
        **overrides,
    )


@pytest.fixture
def console_app(redis, redis_url):
    app = create_app(console_env(redis_url))
    app.config["TESTING"] = True
    return app


@pytest.fixture
def anonymous(console_app):
    """A browser with no session yet (https, so the Secure cookie is kept)."""
    client = console_app.test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    return client


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def log_in(client, password: str = PASSWORD):
    page = client.get("/console/login").get_data(as_text=True)
    return client.post(
        "/console/login",
        data={"username": "alice", "password": password, "csrf_token": csrf_of(page)},
    )


@pytest.fixture
def browser(anonymous):
    """A logged-in client and its CSRF token."""
    assert log_in(anonymous).status_code == 302
    page = anonymous.get("/console/").get_data(as_text=True)
    anonymous.csrf = csrf_of(page)
    return anonymous


def fail(client, redis, code: int = 131049, recipient: str = "818000000001", n: int = 1) -> None:
    """Post `n` failures of `code` (On-Premises token) and run a worker pass: a group opens."""
    statuses = [
        {
            "id": f"wamid.{uuid.uuid4().hex}",
            "recipient_id": recipient,
            "status": "failed",
            "timestamp": "1700000000",
            "errors": [{"code": code}],
        }
        for i in range(n)
    ]
    reply = client.post(
        "/webhook", json={"statuses": statuses}, headers={"Authorization": f"Bearer {ONPREM_TOKEN}"}
    )
    assert reply.status_code == 200
    work(redis)
