"""Authentication before parsing: Meta's signature, the On-Premises token, and 401s."""

import json

import pytest

from tests.conftest import OLD_APP_SECRET, ONPREM_TOKEN, app_env, load_fixture
from webhook import create_app
from webhook.signature import sign, signature_valid
from workers.inbox import intake

FAILED = load_fixture("cloud/failed_131049.json")


def nothing_stored(redis) -> bool:
    return redis.dbsize() == 0


class TestSignature:
    def test_accepts_a_body_signed_with_the_app_secret(self, post, redis):
        """A correctly signed failure is taken and stored."""
        reply = post.signed(FAILED)
        assert reply.status_code == 200
        assert reply.json["stored"] == 1
        assert redis.llen(intake.INBOX) == 1

    def test_accepts_the_older_secret_during_a_rotation(self, post):
        """Any of the comma-separated secrets verifies, so a rotation loses nothing."""
        assert post.signed(FAILED, secret=OLD_APP_SECRET).status_code == 200

    def test_rejects_a_bad_signature_and_keeps_no_trace(self, client, redis):
        """A signature made with another secret gets 401 and nothing is written to Redis."""
        reply = client.post(
            "/webhook", data=FAILED, headers={"X-Hub-Signature-256": sign(FAILED, "wrong")}
        )
        assert reply.status_code == 401
        assert reply.json["error"] == "unauthorized"
        assert nothing_stored(redis)

    def test_rejects_a_missing_signature(self, client, redis):
        """An unsigned body without a token gets 401."""
        assert client.post("/webhook", data=FAILED).status_code == 401
        assert nothing_stored(redis)

    def test_rejects_a_signature_of_other_bytes(self, client, redis):
        """A signature of the re-serialised JSON does not verify the bytes as sent."""
        reserialised = json.dumps(json.loads(FAILED)).encode()
        headers = {"X-Hub-Signature-256": sign(reserialised, "test-app-secret")}
        assert client.post("/webhook", data=FAILED, headers=headers).status_code == 401

    def test_hashes_the_bytes_as_received_with_escaped_unicode(self, post, redis):
        """Meta escapes non-ASCII as \\uXXXX; the signature of those exact bytes verifies."""
        body = load_fixture("cloud/unicode_escaped_failed.json")
        assert b"\\u00e9" in body
        reply = post.signed(body)
        assert reply.status_code == 200
        stored = json.loads(redis.lindex(intake.INBOX, 0))
        assert stored["biz_opaque_callback_data"] == "J'ai mangé des pâtes 注文-42 @home"

    @pytest.mark.parametrize(
        "header", ["", "sha256=", "sha1=abc", "sha256=zz", "sha256=" + "0" * 64, "sha256=é"]
    )
    def test_malformed_headers_never_verify(self, header):
        """Empty, truncated, other-algorithm or non-hex signatures are simply invalid."""
        assert not signature_valid(b"{}", header, ("secret",))


class TestOnPremisesToken:
    def test_accepts_a_bearer_token(self, post, redis):
        """The On-Prem client's body with Authorization: Bearer <token> is taken."""
        reply = post.fixture("on_premises/failed_470.json")
        assert reply.status_code == 200
        assert reply.json["stored"] == 1

    def test_accepts_the_token_in_the_url(self, client):
        """?token=<token> in the registered URL authenticates too."""
        body = load_fixture("on_premises/failed_470.json")
        reply = client.post(f"/webhook?token={ONPREM_TOKEN}", data=body)
        assert reply.status_code == 200

    def test_rejects_a_wrong_token(self, post, redis):
        """A wrong token gets 401 and leaves nothing in Redis."""
        reply = post.with_token(load_fixture("on_premises/failed_470.json"), token="guess")
        assert reply.status_code == 401
        assert nothing_stored(redis)


class TestUnconfigured:
    def test_rejects_everything_when_no_secret_is_configured(self, redis_url, redis):
        """Without secrets and without WASTATUS_INSECURE, nobody is let in."""
        env = app_env(redis_url, WASTATUS_APP_SECRET="", WASTATUS_ONPREM_TOKEN="")
        client = create_app(env).test_client()
        assert client.post("/webhook", data=FAILED).status_code == 401

    def test_accepts_unauthenticated_posts_when_insecure(self, redis_url, redis):
        """WASTATUS_INSECURE=1 with nothing configured is an explicit opt-out."""
        env = app_env(
            redis_url, WASTATUS_APP_SECRET="", WASTATUS_ONPREM_TOKEN="", WASTATUS_INSECURE="1"
        )
        client = create_app(env).test_client()
        assert client.post("/webhook", data=FAILED).status_code == 200

    def test_insecure_does_not_switch_off_configured_secrets(self, redis_url, redis):
        """With a secret configured, WASTATUS_INSECURE=1 still requires the signature."""
        client = create_app(app_env(redis_url, WASTATUS_INSECURE="1")).test_client()
        assert client.post("/webhook", data=FAILED).status_code == 401
