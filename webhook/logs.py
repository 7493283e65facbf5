"""One JSON log line per request: outcome, status, latency and the failure events it carried.

Views add what they know with `note(...)` (kept on `flask.g`); the after-request hook writes the
line. The body, headers and query string are never logged (they carry tokens and phone
numbers); formatting is `workers.logs`' job, which masks and redacts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, g, request

from webhook.payload import Reading
from workers import logs

logger = logging.getLogger("wastatus.web")

MAX_EVENT_IDS = 50
"""A 1000-status batch is logged with its first event ids and the total count."""


def note(**fields: Any) -> None:
    """Add fields to this request's log line."""
    noted = g.get("log_fields")
    if noted is None:
        g.log_fields = fields
    else:
        noted.update(fields)


def note_reading(reading: Reading) -> None:
    """Record what a webhook carried: counts, and the ids (not the content) of its failures."""
    fields: dict[str, Any] = {"statuses": sum(reading.statuses.values())}
    if reading.events:
        fields["events"] = len(reading.events)
        fields["event_ids"] = [event["event_id"] for event in reading.events[:MAX_EVENT_IDS]]
    if reading.problems:
        fields["problems"] = len(reading.problems)
    note(**fields)


def _start() -> None:
    g.log_started = time.perf_counter()


def _finish(response: Response) -> Response:
    if not logger.isEnabledFor(logging.INFO):
        return response
    started = g.get("log_started")
    fields = {
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "latency_ms": None if started is None else round((time.perf_counter() - started) * 1000, 2),
    }
    noted = g.get("log_fields")
    if noted:
        fields.update(noted)
    logs.log(logger, "http.request", **fields)
    return response


def init_app(app: Flask, env: Mapping[str, str]) -> None:
    """Write the app's logs as JSON lines and log every request once."""
    logs.configure(env)
    app.before_request(_start)
    app.after_request(_finish)
