"""The retry queue: asks the business's sender to resend a failed message, with backoff.

A resend job (queue `wastatus-retry`, `workers.retry.resend(event, route, attempt)`, JSON
arguments only) POSTs the enriched event, signed the Standard Webhooks way, to
`WASTATUS_RETRY_URL`. 2xx is done (ledger "resent"). Anything else is rescheduled through
RQ's scheduler after a delay computed here (RQ's own `Retry` has no exponential backoff and no
jitter): exponential from the route's base delay, capped, jittered, and never sooner than the
server's `Retry-After` or the catalog's minimum delay (131049: 24 hours). When the attempts
run out the event is alerted ("retry exhausted") and kept as a dead letter.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import time
from collections.abc import Mapping
from dataclasses import replace

import redis
from prometheus_client import Counter, Histogram
from rq import Retry, get_current_job

from workers import deadletter, ledger
from workers.connection import connect
from workers.delivery import post_json
from workers.enrich import primary_error
from workers.queues import RETRY, get_queue
from workers.routing import route as route_event
from workers.rules import RetrySchedule, Route, current_rules
from workers.signing import sign_standard_webhook

RESEND_JOB = "workers.retry.resend"
DEFAULT_HTTP_TIMEOUT = 10.0
RESULT_TTL = 3600
FAILURE_TTL = 7 * 86400
LOST_JOB_RETRY = Retry(max=3)
"""Run a resend job again if it dies with its worker (SIGKILL, Redis failing under it): RQ
re-queues an abandoned job with retries left at maintenance, else it would leave no trace.
A resend may then reach the endpoint twice; its `webhook-id` is stable for deduplication."""

RETRIES = Counter(
    "wastatus_retries",
    "Resend requests by outcome (scheduled, delivered, rescheduled, exhausted, no_endpoint).",
    ["outcome"],
)
RESEND_SECONDS = Histogram(
    "wastatus_resend_request_seconds",
    "Duration of POSTs to the resend endpoint.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def min_delay(event: Mapping) -> float:
    """The catalog's minimum delay before resending `event` (0 when it gives none)."""
    retry = (event.get("catalog") or {}).get("retry") or {}
    return float(retry.get("min_delay_seconds") or 0)


def backoff_delay(attempt: int, schedule: RetrySchedule, rand: float) -> float:
    """The jittered backoff before `attempt` (2 and up); `rand` is uniform in [0, 1)."""
    ceiling = min(schedule.max_delay, schedule.base_delay * 2.0 ** max(0, attempt - 2))
    if schedule.jitter == "full":
        return rand * ceiling
    if schedule.jitter == "equal":
        return ceiling / 2 + rand * ceiling / 2
    return ceiling


def next_delay(
    attempt: int,
    schedule: RetrySchedule,
    rand: float,
    retry_after: float | None = None,
    floor: float = 0.0,
) -> float:
    """Seconds to wait before `attempt`: the backoff, but never sooner than asked or allowed."""
    return max(backoff_delay(attempt, schedule, rand), retry_after or 0.0, floor)


def job_id(event: Mapping, attempt: int) -> str:
    """Stable per event and attempt, so a replayed batch cannot schedule a resend twice."""
    return f"wastatus-resend-{event['event_id']}-{attempt}"


def schedule_first(
    pipe: redis.client.Pipeline,
    connection: redis.Redis,
    items: list[tuple[dict, Route]],
    now: float,
) -> None:
    """Queue the first resend of each (event, route) on `pipe`: at once, or after the minimum."""
    if not items:
        return
    queue = get_queue(connection, RETRY)
    immediate = []
    for event, chosen in items:
        args = (event, chosen.to_dict(), 1)
        delay = min_delay(event)
        if delay <= 0:
            immediate.append(
                queue.prepare_data(
                    RESEND_JOB,
                    args=args,
                    job_id=job_id(event, 1),
                    result_ttl=RESULT_TTL,
                    failure_ttl=FAILURE_TTL,
                    retry=LOST_JOB_RETRY,
                )
            )
        else:
            when = dt.datetime.fromtimestamp(now + delay, dt.UTC)
            queue.enqueue_at(
                when,
                RESEND_JOB,
                *args,
                job_id=job_id(event, 1),
                result_ttl=RESULT_TTL,
                failure_ttl=FAILURE_TTL,
                retry=LOST_JOB_RETRY,
                pipeline=pipe,
            )
    if immediate:
        queue.enqueue_many(immediate, pipeline=pipe)
    RETRIES.labels("scheduled").inc(len(items))


def request_body(event: Mapping, attempt: int) -> bytes:
    """What the resend endpoint receives: the enriched event, its error and the attempt."""
    body = {**event, "attempt": attempt, "error": primary_error(dict(event))}
    body.pop("ledger", None)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def resend(event: dict, route: dict, attempt: int) -> dict:
    """RQ job: ask the business's sender to resend `event`; reschedule or give up on failure."""
    job = get_current_job()
    connection = job.connection if job is not None else connect()
    env = os.environ
    chosen = Route.from_dict(route)
    schedule = chosen.retry or RetrySchedule()
    url = env.get("WASTATUS_RETRY_URL", "").strip()
    if not url:
        RETRIES.labels("no_endpoint").inc()
        _alert(connection, event, attempt - 1, "no resend endpoint configured")
        return {"outcome": "alerted", "reason": "no WASTATUS_RETRY_URL"}
    body = request_body(event, attempt)
    headers = sign_standard_webhook(
        env.get("WASTATUS_RETRY_SECRET", "").strip() or None,
        f"msg_{event['event_id']}",
        int(time.time()),
        body,
    )
    headers["wastatus-attempt"] = str(attempt)
    timeout = float(env.get("WASTATUS_HTTP_TIMEOUT") or DEFAULT_HTTP_TIMEOUT)
    started = time.monotonic()
    result = post_json(url, body, headers, timeout)
    RESEND_SECONDS.observe(time.monotonic() - started)
    if result.ok:
        RETRIES.labels("delivered").inc()
        if event.get("ledger", True):
            ledger.record(connection, "resent", [event["event_id"]])
        return {"outcome": "resent", "attempt": attempt, "status": result.status}
    if attempt >= schedule.attempts:
        RETRIES.labels("exhausted").inc()
        reason = f"no resend accepted after {attempt} attempts; last: {result.error}"
        _alert(connection, event, attempt, reason)
        deadletter.put(
            connection,
            "retry",
            {"event": _original(event), "attempts": attempt, "last_status": result.status},
            reason,
        )
        return {"outcome": "exhausted", "attempt": attempt, "error": result.error}
    delay = next_delay(
        attempt + 1, schedule, random.random(), result.retry_after_seconds, min_delay(event)
    )
    get_queue(connection, RETRY).enqueue_in(
        dt.timedelta(seconds=delay),
        RESEND_JOB,
        event,
        route,
        attempt + 1,
        job_id=job_id(event, attempt + 1),
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        retry=LOST_JOB_RETRY,
    )
    RETRIES.labels("rescheduled").inc()
    return {"outcome": "rescheduled", "attempt": attempt, "delay": delay, "error": result.error}


def _original(event: Mapping) -> dict:
    # What goes back to the inbox on `dead replay`: the event as the webhook stored it.
    return {
        key: value
        for key, value in event.items()
        if key not in ("code", "catalog", "ledger", "retry_exhausted")
    }


def _alert(connection: redis.Redis, event: dict, attempts: int, reason: str) -> None:
    """Alert `event` on the routes it takes when resending is off ("retry exhausted")."""
    from workers import alerts  # the alerts side imports rules; import it late

    rules = current_rules()
    taken = route_event(event, replace(rules, resend_enabled=False))
    alert_routes = [chosen for chosen in taken if chosen.action == "alert"] or [rules.alert_route]
    flagged = {
        **event,
        "retry_exhausted": True,
        "retry_attempts": attempts,
        "retry_reason": reason,
    }
    flagged.pop("ledger", None)
    for chosen in alert_routes:
        alerts.submit(connection, [flagged], chosen)
