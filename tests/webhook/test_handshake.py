"""GET /webhook: Meta's verification handshake."""

from tests.conftest import VERIFY_TOKEN


class TestHandshake:
    def test_echoes_the_challenge_when_the_token_matches(self, client):
        """A subscribe request with the right verify token gets its challenge back as the body."""
        reply = client.get(
            "/webhook",
            query_string={
                "hub.mode": "subscribe",
                "hub.verify_token": VERIFY_TOKEN,
                "hub.challenge": "1158201444",
            },
        )
        assert reply.status_code == 200
        assert reply.get_data(as_text=True) == "1158201444"

    def test_refuses_a_wrong_token(self, client):
        """A wrong verify token gets 403 with the JSON error shape."""
        reply = client.get(
            "/webhook",
            query_string={
                "hub.mode": "subscribe",
                "hub.verify_token": "nope",
                "hub.challenge": "1",
            },
        )
        assert reply.status_code == 403
        assert reply.json["error"] == "verification-failed"

    def test_refuses_another_mode(self, client):
        """Only hub.mode=subscribe is answered."""
        reply = client.get(
            "/webhook",
            query_string={
                "hub.mode": "unsubscribe",
                "hub.verify_token": VERIFY_TOKEN,
                "hub.challenge": "1",
            },
        )
        assert reply.status_code == 403

    def test_refuses_everything_when_no_verify_token_is_configured(self, redis_url):
        """With WASTATUS_VERIFY_TOKEN unset, an empty token does not verify."""
        from tests.conftest import app_env
        from webhook import create_app

        client = create_app(app_env(redis_url, WASTATUS_VERIFY_TOKEN="")).test_client()
        reply = client.get(
            "/webhook",
            query_string={"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"},
        )
        assert reply.status_code == 403
