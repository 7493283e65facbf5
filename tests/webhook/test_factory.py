"""The app factory."""

from webhook import create_app
from workers.settings import Settings


class TestCreateApp:
    def test_reads_the_given_mapping_not_the_process_environment(self, monkeypatch):
        """A mapping passed to create_app is the whole configuration."""
        monkeypatch.setenv("WASTATUS_APP_SECRET", "from-process-env")
        app = create_app({"WASTATUS_APP_SECRET": "a, b", "WASTATUS_MAX_BODY": "2048"})
        settings = app.extensions["wastatus"].settings
        assert settings.app_secrets == ("a", "b")
        assert settings.max_body == 2048

    def test_reads_the_process_environment_by_default(self, monkeypatch):
        """Without a mapping, settings come from WASTATUS_* variables."""
        monkeypatch.setenv("WASTATUS_ONPREM_TOKEN", "tok")
        monkeypatch.delenv("WASTATUS_MAX_BODY", raising=False)
        settings = create_app().extensions["wastatus"].settings
        assert settings.onprem_tokens == ("tok",)
        assert settings.max_body == Settings().max_body

    def test_builds_no_redis_connection_until_needed(self):
        """Creating the app does not touch Redis, so it starts while Redis is down."""
        app = create_app({"REDIS_URL": "redis://127.0.0.1:1/0"})
        assert app.extensions["wastatus"]._redis is None
