"""One JSON log line per request: outcome, status, latency and the failure events it carried.

Views add what they know with `note(...)` (kept on `flask.g`); the after-request hook writes the
line. The body, headers and query string are never logged (they carry tokens and phone
numbers); formatting is `workers.logs`' job, which masks and redacts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
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


def _finisher(only_failures: bool) -> Callable[[Response], Response]:
    """The after-request hook; with `only_failures`, plain 200s without failures are skipped."""

    def finish(response: Response) -> Response:
        if not logger.isEnabledFor(logging.INFO):
            return response
        noted = g.get("log_fields")
        if only_failures and response.status_code == 200 and not (noted and noted.get("events")):
            return response
        started = g.get("log_started")
        fields = {
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "latency_ms": None
            if started is None
            else round((time.perf_counter() - started) * 1000, 2),
        }
        if noted:
            fields.update(noted)
        # Ids, counts and our own outcome names only: nothing here needs the scrub walk.
        logs.log_fields(logger, "http.request", fields)
        return response

    return finish


REQUEST_MODES = ("all", "failures", "none")
"""`WASTATUS_LOG_REQUESTS`: a line for every request (default); only for requests that carried
failures or were not answered 200; or none."""


def init_app(app: Flask, env: Mapping[str, str]) -> None:
    """Write the app's logs as JSON lines and log requests as `WASTATUS_LOG_REQUESTS` says."""
    logs.configure(env)
    mode = (env.get("WASTATUS_LOG_REQUESTS") or "all").strip().lower()
    if mode not in REQUEST_MODES:
        raise ValueError(f"WASTATUS_LOG_REQUESTS must be one of: {', '.join(REQUEST_MODES)}")
    if mode != "none":
        app.before_request(_start)
        app.after_request(_finisher(only_failures=mode == "failures"))
