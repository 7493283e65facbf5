"""`/webhook`: Meta's verification handshake and the status webhooks of both APIs.

The POST view is a flat ladder of early returns, each with its own status and counter:
too large 413, unauthenticated 401, Redis down 503, otherwise 200 once everything that
needs keeping (failure events, a quarantined body) is stored.
"""

from __future__ import annotations

import functools
import time

import redis
from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import Counter

from webhook import counters, funnel, logs, quarantine
from webhook.errors import error_response
from webhook.payload import read_body
from webhook.signature import authenticate, token_valid
from workers.inbox import intake
from workers.outcomes import timelines

bp = Blueprint("webhook", __name__)


@functools.cache
def _counter(family: Counter, *labels: str) -> Counter:
    """A labelled child (label values in the family's order), looked up once: `labels()`
    costs microseconds on every request."""
    return family.labels(*labels)


@bp.record_once
def _show_both_results(_setup) -> None:
    """Both result series exist from the start, at 0, so rate() over them works at once."""
    for result in ("stored", "duplicate"):
        _counter(counters.EVENTS_STORED, result)


def _outcome(log: dict, name: str, started: float) -> None:
    _counter(counters.WEBHOOK_REQUESTS, name).inc()
    _counter(counters.WEBHOOK_SECONDS, name).observe(time.perf_counter() - started)
    log["outcome"] = name


def _json_reply(body: bytes) -> Response:
    return Response(body, mimetype="application/json")


# Nine in ten webhooks carry no failure; their reply never changes, so it is encoded once.
NOTHING_TO_STORE = b'{"duplicates":0,"ok":true,"stored":0}\n'
STORED = '{{"duplicates":{duplicates},"ok":true,"stored":{stored}}}\n'
"""The reply once events are stored: the same JSON jsonify gives, without its cost."""


def _declared_length(environ: dict) -> int:
    """The Content-Length, 0 when absent or unreadable (the read below bounds the body)."""
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _read_body(stream, limit: int) -> bytes | None:
    """The whole body, or None once it exceeds `limit` (chunked bodies have no length)."""
    chunks, size = [], 0
    while chunk := stream.read(min(65536, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
    return b"".join(chunks)


@bp.get("/webhook")
def verify():
    """Meta's subscription handshake: echo hub.challenge when the verify token matches."""
    settings = current_app.extensions["wastatus"].settings
    args = request.args
    if args.get("hub.mode") != "subscribe" or not settings.verify_token:
        return error_response("verification-failed")
    if not token_valid(args.get("hub.verify_token"), (settings.verify_token,)):
        return error_response("verification-failed")
    return args.get("hub.challenge", ""), 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.post("/webhook")
def receive():
    started = time.perf_counter()
    state = current_app.extensions["wastatus"]
    settings = state.settings
    req = request._get_current_object()  # once: each use of the proxy costs a lookup
    log = logs.fields(req.environ)
    body = None
    if _declared_length(req.environ) <= settings.max_body:
        body = _read_body(req.stream, settings.max_body)
    if body is None:  # refused before authentication: a counter, no log line (as for 401s)
        _outcome(log, "too_large", started)
        logs.leave_no_trace(req.environ)
        return error_response("body-too-large")

    auth = authenticate(body, req, settings)
    if auth is None:
        _outcome(log, "unauthorized", started)
        logs.leave_no_trace(req.environ)
        return error_response("unauthorized")

    received_at = time.time()
    reading = read_body(body, received_at, track=settings.track_messages > 0)
    log |= logs.reading_fields(reading)
    for (api, status), count in reading.statuses.items():
        _counter(counters.STATUSES, api, status).inc(count)
    for name, count in reading.ignored_fields.items():
        counters.FIELDS_IGNORED.labels(field=name).inc(count)
    if not reading.events and not reading.problems and not reading.tracked:
        # funnel counts are flushed in the background: still no Redis round trip here
        state.funnel.add(reading.fates, received_at, reading.progressed, reading.ended)
        _outcome(log, "accepted", started)  # statuses that did not fail need no Redis round trip
        return _json_reply(NOTHING_TO_STORE)

    recorded = None
    try:
        connection = state.redis()
        if reading.tracked:  # message tracking on: every status of the request, one round trip
            recorded = timelines.record(connection, reading.tracked, received_at,
                                        settings.track_messages, settings.stuck_after)  # fmt: skip
            funnel.count_once(reading.fates, recorded)
        stored = intake.store(connection, reading.events, settings.dedup_seconds)
        quarantine_id = (
            quarantine.put(connection, body, reading.problems, auth, received_at)
            if reading.problems
            else None
        )
    except (redis.RedisError, state.not_configured) as error:
        current_app.logger.warning("webhook.unavailable: %s", error)
        if recorded is not None:  # the timelines hold its statuses: Meta's resend skips them
            state.funnel.add(reading.fates, received_at, reading.progressed, reading.ended)
        _outcome(log, "unavailable", started)
        response, status = error_response("storage-unavailable")
        response.headers["Retry-After"] = "5"
        return response, status

    # a body whose every failure was taken before is Meta's redelivery: its statuses counted
    redelivered = not reading.tracked and reading.events and stored.stored == 0
    if not redelivered:
        state.funnel.add(
            reading.fates, received_at, reading.progressed, reading.ended
        )  # stored: not a 503
    for result, count in (("stored", stored.stored), ("duplicate", stored.duplicates)):
        if count:
            _counter(counters.EVENTS_STORED, result).inc(count)
    log |= {"stored": stored.stored, "duplicates": stored.duplicates, "quarantined": quarantine_id}
    if quarantine_id:
        _outcome(log, "quarantined", started)
        current_app.logger.warning("webhook.quarantined id=%s", quarantine_id)
        reply = {"ok": True, "stored": stored.stored, "duplicates": stored.duplicates}
        return jsonify(reply | {"quarantined": quarantine_id, "problems": reading.problems})
    if not reading.events:  # tracked statuses only
        _outcome(log, "accepted", started)
        return _json_reply(NOTHING_TO_STORE)
    _outcome(log, "duplicate" if stored.stored == 0 else "accepted", started)
    return _json_reply(STORED.format(stored=stored.stored, duplicates=stored.duplicates).encode())
