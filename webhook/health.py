"""`GET /healthz` (the process answers) and `GET /readyz` (it can take webhooks right now).

A load balancer or Kubernetes restarts a process whose /healthz fails and stops sending traffic
to one whose /readyz fails. /readyz fails when Redis is unreachable (the webhook would answer
503 anyway) or when more work waits than `WASTATUS_READY_MAX_BACKLOG` (the workers are not
keeping up; taking more only grows the backlog and the delay of every alert), or when the
oldest stored failure has waited longer than `WASTATUS_READY_MAX_INBOX_AGE` (a drain that
crashes on every batch, or no worker at all: events are taken and never alerted).
"""

from __future__ import annotations

import os

import redis
from flask import Blueprint, Flask, Response, current_app, jsonify

from webhook.errors import error_response
from workers import backlog
from workers.connection import RedisNotConfigured
from workers.inbox import intake
from workers.settings import Settings

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers: nothing else is checked, so a Redis outage restarts nothing."""
    return jsonify(ok=True, pid=os.getpid())


@bp.get("/readyz")
def readyz() -> Response | tuple[Response, int]:
    """Ready when Redis answers and the backlog is under the configured maximum."""
    state = current_app.extensions["wastatus"]
    limit = current_app.config["WASTATUS_READY_MAX_BACKLOG"]
    max_age = state.settings.ready_max_inbox_age  # the app's settings, like the limit
    try:
        connection = state.redis()
        waiting = backlog.queue_lengths(connection)
        age = intake.oldest_age(connection)
    except (redis.RedisError, RedisNotConfigured) as error:
        return error_response("redis-unavailable", reason=str(error) or type(error).__name__)
    total = sum(waiting.values())
    if total > limit:
        return error_response(
            "backlog-too-large", backlog=total, max_backlog=limit, waiting=waiting
        )
    if age > max_age:
        return error_response("drain-stuck", oldest_event_age=round(age, 3), max_inbox_age=max_age)
    return jsonify(ok=True, backlog=total, max_backlog=limit, waiting=waiting)


def init_app(app: Flask, settings: Settings) -> None:
    """Register the endpoints, with the backlog limit of `settings`."""
    app.config["WASTATUS_READY_MAX_BACKLOG"] = settings.ready_max_backlog
    app.register_blueprint(bp)
