"""The Flask edge of wastatus: the app factory, views, schemas and signature checks."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import redis
from flask import Flask
from werkzeug.exceptions import HTTPException

from webhook.errors import code_for_status, error_response
from workers.connection import RedisNotConfigured, connect
from workers.settings import Settings, load, read


class State:
    """What the app keeps between requests: its settings and one Redis client."""

    not_configured = RedisNotConfigured

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._redis: redis.Redis | None = None
        self._redis_lock = threading.Lock()
        # Imported here, not at the top: `python -m webhook.granian_server` imports this package
        # before it sets PROMETHEUS_MULTIPROC_DIR, and prometheus_client must come after that.
        from webhook import funnel

        self.funnel = funnel.Tally(settings, self.redis)

    def redis(self) -> redis.Redis:
        """The Redis client, made on first use (one per worker process, shared by its threads)."""
        if self._redis is None:
            with self._redis_lock:
                if self._redis is None:
                    self._redis = connect(None, self.settings)
        return self._redis


def create_app(test_config: Mapping[str, str] | None = None) -> Flask:
    """The web app, configured from `test_config` if given, else from the environment.

    Every setting is validated here (SettingsError names each bad one); under gunicorn,
    `webhook.gunicorn_conf` has already validated them once, before any worker starts.
    """
    settings = load() if test_config is None else read(test_config)
    app = Flask(__name__)
    # The webhook view bounds its body itself: Werkzeug's limit silently truncates a chunked
    # body instead of refusing it.
    app.config["MAX_CONTENT_LENGTH"] = None
    app.json.ensure_ascii = False
    app.extensions["wastatus"] = State(settings)

    from webhook import catalog_views, views

    app.register_blueprint(views.bp)
    app.register_blueprint(catalog_views.bp)

    from webhook import health, logs, metrics_view

    if settings.console_enabled:  # an admin tool: absent unless someone can log in
        from webhook import api, console

        console.init_app(app, settings)
        app.register_blueprint(api.bp)

    health.init_app(app, settings)
    metrics_view.init_app(app)
    logs.init_app(app, settings)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return error_response(code_for_status(error.code or 500))

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        app.logger.exception("request.failed")
        return error_response("internal-error")

    return app
