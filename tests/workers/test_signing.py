"""Standard Webhooks signing and the HTTP delivery helper."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac

import pytest

from bench._receiver import Reply
from webhook.cli.redis_server import free_port
from workers.delivery import parse_retry_after, post_json
from workers.signing import (
    InvalidSecret,
    VerificationError,
    generate_secret,
    sign_standard_webhook,
    verify_standard_webhook,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class TestSignStandardWebhook:
    def test_matches_the_specification_example(self):
        """The signature equals the Standard Webhooks reference example for the same inputs."""
        headers = sign_standard_webhook(
            SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
        )
        assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

    def test_is_hmac_of_id_timestamp_and_body(self):
        """The signature is base64 HMAC-SHA256 of "id.timestamp.body" under the decoded key."""
        secret = generate_secret()
        key = base64.b64decode(secret.removeprefix("whsec_"))
        body = '{"日本": 1}'.encode()
        headers = sign_standard_webhook(secret, "msg_1", 1700000000, body)
        digest = hmac.new(key, b"msg_1.1700000000." + body, hashlib.sha256).digest()
        assert headers == {
            "webhook-id": "msg_1",
            "webhook-timestamp": "1700000000",
            "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        }

    def test_no_secret_sends_no_signature(self):
        """Without a secret the id and timestamp headers are still sent, unsigned."""
        assert "webhook-signature" not in sign_standard_webhook(None, "m", 1, b"{}")

    def test_rejects_a_secret_that_is_not_base64(self):
        """A malformed secret is refused rather than used as a weak key."""
        with pytest.raises(InvalidSecret):
            sign_standard_webhook("whsec_not base64!", "m", 1, b"{}")


class TestVerifyStandardWebhook:
    def test_accepts_its_own_signature(self):
        """A request signed now verifies with the same secret."""
        headers = sign_standard_webhook(SECRET, "msg_2", 1700000000, b"{}")
        verify_standard_webhook(SECRET, headers, b"{}", now=1700000010)

    def test_accepts_one_of_several_signatures(self):
        """During a key rotation a space-separated list of signatures verifies if one matches."""
        headers = sign_standard_webhook(SECRET, "msg_2", 1700000000, b"{}")
        headers["webhook-signature"] = "v1,bogus " + headers["webhook-signature"]
        verify_standard_webhook(SECRET, headers, b"{}", now=1700000000)

    @pytest.mark.parametrize(
        ("body", "now", "secret"),
        [
            (b'{"x": 1}', 1700000000, SECRET),  # body changed
            (b"{}", 1700000000 + 301, SECRET),  # too old: a replay
            (b"{}", 1700000000, generate_secret()),  # other key
        ],
    )
    def test_rejects_tampering_replay_and_other_keys(self, body, now, secret):
        """A changed body, a stale timestamp or another key fails verification."""
        headers = sign_standard_webhook(SECRET, "msg_3", 1700000000, b"{}")
        with pytest.raises(VerificationError):
            verify_standard_webhook(secret, headers, body, now=now)


class TestParseRetryAfter:
    def test_seconds(self):
        """Delta-seconds are read as seconds."""
        assert parse_retry_after("120") == 120.0

    def test_http_date(self):
        """An HTTP date becomes the seconds from now until then."""
        value = email.utils.formatdate(1700000100, usegmt=True)
        assert parse_retry_after(value, now=1700000000) == pytest.approx(100.0)

    @pytest.mark.parametrize("value", [None, "", "soon", "-5"])
    def test_garbage_is_ignored(self, value):
        """Missing or unreadable values give None, not an exception."""
        assert parse_retry_after(value) is None


class TestPostJson:
    def test_2xx_is_ok_and_body_is_sent_verbatim(self, receiver):
        """A 2xx answer is ok, and the receiver gets exactly the bytes that were signed."""
        body = '{"b": 1,  "a": "日本"}'.encode()
        result = post_json(receiver.url + "/resend", body, {"webhook-id": "m"}, timeout=5)
        assert result.ok and result.status == 200
        assert receiver.requests[0].body == body
        assert receiver.requests[0].headers["webhook-id"] == "m"

    def test_429_reports_retry_after(self, receiver):
        """A 429 is not ok and carries the server's Retry-After in seconds."""
        receiver.script(Reply(429, {"Retry-After": "7"}))
        result = post_json(receiver.url, b"{}", {}, timeout=5)
        assert (result.ok, result.status, result.retry_after_seconds) == (False, 429, 7.0)

    def test_refused_connection_is_a_result(self):
        """Nothing listening gives a result with no status and the error, not an exception."""
        result = post_json(f"http://127.0.0.1:{free_port()}/", b"{}", {}, timeout=2)
        assert not result.ok and result.status is None and "ConnectionError" in result.error

    def test_timeout_is_a_result(self, receiver):
        """A server slower than the timeout gives a failed result."""
        receiver.script(Reply(200, delay=1.0))
        result = post_json(receiver.url, b"{}", {}, timeout=0.2)
        assert not result.ok and result.status is None
