"""One JSON log line per request: outcome, status, latency and the failure events it carried.

A WSGI middleware around the Flask app writes the line once the app has answered. Views add
what they know to `fields(environ)`, a dict kept in the WSGI environ: cheaper on the hot path
than Flask's `g` and request hooks, and it sees every request, 404s included. The body, headers
and query string are never logged (they carry tokens and phone numbers); views add ids, counts
and outcome names only, so the line is written without `workers.logs`' scrub walk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from webhook.payload import Reading
from workers import logs
from workers.settings import Settings

logger = logging.getLogger("wastatus.web")

MAX_EVENT_IDS = 50
"""A 1000-status batch is logged with its first event ids and the total count."""

ENVIRON_KEY = "wastatus.log_fields"
NO_TRACE_KEY = "wastatus.no_trace"


def leave_no_trace(environ: dict) -> None:
    """Write no line for this request: an unauthenticated one leaves nothing but a counter,
    so whoever floods the URL cannot fill the logs."""
    environ[NO_TRACE_KEY] = True


def fields(environ: dict) -> dict[str, Any]:
    """This request's log fields, for a view to add to."""
    noted = environ.get(ENVIRON_KEY)
    if noted is None:
        noted = environ[ENVIRON_KEY] = {}
    return noted


def reading_fields(reading: Reading) -> dict[str, Any]:
    """What a webhook carried: counts, and the ids (not the content) of its failures."""
    found: dict[str, Any] = {"statuses": sum(reading.statuses.values())}
    if reading.events:
        found["events"] = len(reading.events)
        found["event_ids"] = [event["event_id"] for event in reading.events[:MAX_EVENT_IDS]]
    if reading.problems:
        found["problems"] = len(reading.problems)
    return found


class RequestLog:
    """WSGI middleware writing `http.request` lines; with `only_failures`, plain 200s without
    failure events are skipped."""

    def __init__(self, app: Callable, only_failures: bool) -> None:
        self.app = app
        self.only_failures = only_failures

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        answered: list[str] = []

        def remember_status(status: str, headers: list, exc_info: Any = None) -> Callable:
            answered.append(status)
            return start_response(status, headers, exc_info)

        body = self.app(environ, remember_status)
        if answered and not environ.get(NO_TRACE_KEY) and logger.isEnabledFor(logging.INFO):
            self.write(environ, int(answered[-1][:3]), started)
        return body

    def write(self, environ: dict, status: int, started: float) -> None:
        noted = environ.get(ENVIRON_KEY)
        if self.only_failures and status == 200 and not (noted and noted.get("events")):
            return
        line = {
            "method": environ.get("REQUEST_METHOD"),
            # WSGI hands the path over as latin-1; the bytes were UTF-8 on the wire.
            "path": environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace"),
            "status": status,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        if noted:
            line.update(noted)
        logs.log_fields(logger, "http.request", line)


def init_app(app: Flask, settings: Settings) -> None:
    """Write the app's logs as JSON lines and log requests as `WASTATUS_LOG_REQUESTS` says:
    `failures` (the default) writes a line only for requests that carried failures or were not
    answered 200, since /metrics counts the rest; `all` one for every request; `none` none."""
    logs.configure(settings)
    if settings.log_requests != "none":
        only_failures = settings.log_requests == "failures"
        app.wsgi_app = RequestLog(app.wsgi_app, only_failures=only_failures)
