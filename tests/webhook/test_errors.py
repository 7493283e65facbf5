"""The one table of web error replies: every endpoint answers from it, nothing builds its own."""

from __future__ import annotations

from pathlib import Path

import pytest

import webhook
from webhook.errors import ERRORS, STATUS_CODES, code_for_status

WEBHOOK_DIR = Path(webhook.__file__).parent

# One request per error code the app can answer without stopping Redis or filling queues.
REQUESTS = [
    ("GET", "/nowhere", "not-found"),
    ("DELETE", "/webhook", "method-not-allowed"),
    ("GET", "/webhook?hub.mode=subscribe&hub.verify_token=wrong", "verification-failed"),
    ("POST", "/webhook", "unauthorized"),
    ("GET", "/catalog/nope/131049", "api-unknown"),
    ("GET", "/catalog/cloud/-1", "code-invalid"),
    ("GET", "/catalog?category=nope", "category-unknown"),
    ("GET", "/metrics?scope=nope", "bad-request"),
]


class TestOneErrorTable:
    """Every error reply carries a code of webhook/errors.py with that table's status and prose."""

    @pytest.mark.parametrize(("method", "path", "code"), REQUESTS)
    def test_reply_comes_from_the_table(self, client, method, path, code):
        reply = client.open(path, method=method)
        status, message = ERRORS[code]
        assert (reply.status_code, reply.json["error"]) == (status, code)
        # /metrics names the scopes it takes in place of the table's generic prose.
        expected = message if code != "bad-request" else "scope must be one of: "
        assert reply.json["message"].startswith(expected)

    def test_no_other_module_builds_an_error_reply(self):
        builders = [
            path.relative_to(WEBHOOK_DIR).as_posix()
            for path in WEBHOOK_DIR.rglob("*.py")
            if "jsonify(error=" in path.read_text() or "ERRORS" in path.read_text()
        ]
        assert builders == ["errors.py"]

    def test_every_status_werkzeug_raises_maps_to_a_code_of_that_status(self):
        for status, code in STATUS_CODES.items():
            assert ERRORS[code][0] == status
        assert code_for_status(418) == "bad-request"
        assert code_for_status(502) == "internal-error"
