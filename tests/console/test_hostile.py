"""Odd and hostile requests to the console and its API get a 4xx, never a 500."""

from __future__ import annotations

import pytest

from tests.console.conftest import TOKEN

BEARER = {"Authorization": f"Bearer {TOKEN}"}


class TestApiBodies:
    """Bodies of every wrong shape are refused with the error table's codes."""

    @pytest.mark.parametrize("body", [
        b"", b"not json", b"[]", b"null", b'"text"', b'{"matchers": null}',
        b'{"matchers": {"code": {"a": 1}}}', b'{"matchers": {"code": [[1]]}}',
        b'{"matchers": {"code": 1}, "duration": [1]}', b'{"matchers": {"code": 1}, "duration": -1}',
        b'{"matchers": {"code": 1}, "duration": "999999d"}', b'{"matchers": {"\\ud800": 1}}',
        b'{"matchers": {"code": 1}, "comment": {"x": 1}}',
    ])  # fmt: skip
    def test_silence_bodies(self, anonymous, body):
        for path in ("/api/v1/silences", "/api/v1/silences/preview"):
            reply = anonymous.post(
                path, data=body, headers={**BEARER, "Content-Type": "application/json"}
            )
            assert 200 <= reply.status_code < 500, (path, body, reply.data)
            if reply.status_code >= 400:
                assert reply.json["error"] == "silence-invalid"

    @pytest.mark.parametrize("path", [
        "/api/v1/quarantine/1-2-3", "/api/v1/quarantine/%00", "/api/v1/groups/..%2f..",
        "/api/v1/groups/x?page=abc", "/api/v1/dead-letters/%ff", "/api/v1/catalog?q=%00",
    ])  # fmt: skip
    def test_odd_paths(self, anonymous, path):
        assert anonymous.get(path, headers=BEARER).status_code in (200, 404)

    def test_a_huge_body_is_413(self, anonymous):
        reply = anonymous.post(
            "/api/v1/silences",
            data=b"{" + b" " * (2 << 20) + b"}",
            headers={**BEARER, "Content-Type": "application/json"},
        )
        assert reply.status_code == 413

    def test_replay_all_counts_of_every_type(self, anonymous):
        for count in ("0", 0.0, None, [], True):
            reply = anonymous.post(
                "/api/v1/dead-letters/replay", json={"count": count}, headers=BEARER
            )
            assert reply.status_code in (200, 409), count
