"""The retry queue: asks the business's sender to resend a failed message, with backoff.

A resend job (queue `wastatus-retry`, `workers.retry.resend(event, route, attempt)`, JSON
arguments only) POSTs the enriched event, signed the Standard Webhooks way, to
`WASTATUS_RETRY_URL`. 2xx is done (ledger "resent"). Anything else is rescheduled through
RQ's scheduler after a delay computed here (RQ's own `Retry` has no exponential backoff and no
jitter): exponential from the route's base delay, capped, jittered, and never sooner than the
server's `Retry-After` or the catalog's minimum delay (131049: 24 hours). When the attempts
run out the event is alerted ("retry exhausted") and kept as a dead letter.

Every resend job not yet finished is also listed in `PENDING`, written in the same transaction
that queues it and cleared in the one that records how it ended: RQ alone can lose a job (a
worker that pops one and dies before its work horse marks it started leaves it in no queue and
no registry), and `recover`, run by every worker's maintenance, queues such a job again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import replace

import redis
from prometheus_client import Counter, Histogram
from rq import Retry, get_current_job
from rq.job import Job
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from workers import deadletter, ledger, logs
from workers.connection import connect
from workers.delivery import post_json
from workers.enrich import primary_error
from workers.queues import RETRY, get_queue
from workers.routing import route as route_event
from workers.rules import RetrySchedule, Route, current_rules
from workers.settings import current
from workers.signing import sign_standard_webhook

RESEND_JOB = "workers.retry.resend"
DEFAULT_HTTP_TIMEOUT = 10.0
RESULT_TTL = 3600
FAILURE_TTL = 7 * 86400
LOST_JOB_RETRY = Retry(max=3)
"""Run a resend job again if it dies with its worker (SIGKILL, Redis failing under it): RQ
re-queues an abandoned job with retries left at maintenance, else it would leave no trace.
A resend may then reach the endpoint twice; its `webhook-id` is stable for deduplication."""

PENDING = "wastatus:retry:pending"
"""Sorted set of the resend job ids not finished yet, scored by when each is due."""

SUSPECTS = "wastatus:retry:suspects"
"""Hash: job id → when `recover` first found that overdue job in no RQ queue or registry."""

RECOVER_GRACE_SECONDS = 10.0
"""A resend job this overdue is looked for in RQ; one found missing twice, this far apart, is
lost (a live worker holds a job it popped but has not started for milliseconds, not seconds)."""

logger = logging.getLogger("wastatus.retry")

RETRIES = Counter(
    "wastatus_retries",
    "Resend requests by outcome (scheduled, delivered, rescheduled, exhausted, no_endpoint,"
    " recovered).",
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
        pipe.zadd(PENDING, {job_id(event, 1): now + max(0.0, delay)})
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
    settings = current()
    chosen = Route.from_dict(route)
    schedule = chosen.retry or RetrySchedule()
    url = settings.retry_url
    this_job = job_id(event, attempt)
    if not url:
        RETRIES.labels("no_endpoint").inc()
        _alert(connection, event, attempt - 1, "no resend endpoint configured")
        connection.zrem(PENDING, this_job)
        return {"outcome": "alerted", "reason": "no WASTATUS_RETRY_URL"}
    body = request_body(event, attempt)
    headers = sign_standard_webhook(
        settings.retry_secret,
        f"msg_{event['event_id']}",
        int(time.time()),
        body,
    )
    headers["wastatus-attempt"] = str(attempt)
    timeout = settings.http_timeout
    started = time.monotonic()
    result = post_json(url, body, headers, timeout)
    RESEND_SECONDS.observe(time.monotonic() - started)
    if result.ok:
        RETRIES.labels("delivered").inc()
        with connection.pipeline(transaction=True) as pipe:
            if event.get("ledger", True):
                ledger.record(pipe, "resent", [event["event_id"]])
            pipe.zrem(PENDING, this_job)
            pipe.execute()
        return {"outcome": "resent", "attempt": attempt, "status": result.status}
    if attempt >= schedule.attempts:
        RETRIES.labels("exhausted").inc()
        reason = f"no resend accepted after {attempt} attempts; last: {result.error}"
        _alert(connection, event, attempt, reason)
        with connection.pipeline(transaction=True) as pipe:
            deadletter.put(
                pipe,
                "retry",
                {"event": _original(event), "attempts": attempt, "last_status": result.status},
                reason,
            )
            pipe.zrem(PENDING, this_job)
            pipe.execute()
        return {"outcome": "exhausted", "attempt": attempt, "error": result.error}
    delay = next_delay(
        attempt + 1, schedule, random.random(), result.retry_after_seconds, min_delay(event)
    )
    following = job_id(event, attempt + 1)
    with connection.pipeline(transaction=True) as pipe:
        get_queue(connection, RETRY).enqueue_in(
            dt.timedelta(seconds=delay),
            RESEND_JOB,
            event,
            route,
            attempt + 1,
            job_id=following,
            result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL,
            retry=LOST_JOB_RETRY,
            pipeline=pipe,
        )
        pipe.zadd(PENDING, {following: time.time() + delay})
        pipe.zrem(PENDING, this_job)
        pipe.execute()
    RETRIES.labels("rescheduled").inc()
    return {"outcome": "rescheduled", "attempt": attempt, "delay": delay, "error": result.error}


_CHECK = """
local pending, suspects, job, queue, scheduled = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, now, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local status = redis.call('HGET', job, 'status')
if not status or status == 'finished' or status == 'failed' or status == 'stopped'
    or status == 'canceled' then
  -- ended (a crash is the failed registry's to show) or gone: nothing left to watch
  redis.call('ZREM', pending, id)
  redis.call('HDEL', suspects, id)
  return 'ended'
end
local waiting = true  -- 'started': RQ re-queues an abandoned job (LOST_JOB_RETRY)
if status == 'queued' then
  waiting = redis.call('LPOS', queue, id) ~= false
elseif status == 'scheduled' then
  waiting = redis.call('ZSCORE', scheduled, id) ~= false
end
if waiting then
  redis.call('HDEL', suspects, id)
  return 'waiting'
end
local first = tonumber(redis.call('HGET', suspects, id) or '-1')
if first < 0 then
  redis.call('HSET', suspects, id, ARGV[2])
  return 'suspect'
end
if now - first < grace then return 'suspect' end
redis.call('HDEL', suspects, id)
return 'lost'
"""


def recover(
    connection: redis.Redis, now: float | None = None, grace: float = RECOVER_GRACE_SECONDS
) -> int:
    """Queue again the resend jobs RQ lost (popped by a worker that died before starting
    them: in no queue and no registry); returns how many."""
    current = time.time() if now is None else now
    queue = get_queue(connection, RETRY)
    scheduled = ScheduledJobRegistry(queue=queue)
    check = connection.register_script(_CHECK)
    recovered = 0
    for raw in connection.zrangebyscore(PENDING, "-inf", current - grace, start=0, num=100):
        job_key = Job.key_for(raw.decode())
        keys = [PENDING, SUSPECTS, job_key, queue.key, scheduled.key]
        if check(keys=keys, args=[raw, current, grace]) != b"lost":
            continue
        job = Job.fetch(raw.decode(), connection=connection, serializer=JSONSerializer)
        with connection.pipeline(transaction=True) as pipe:
            queue.enqueue_job(job, pipeline=pipe)  # first: it starts the pipeline's MULTI
            # its stale executions must not make RQ's cleanup run it a second time
            StartedJobRegistry(queue=queue).remove_executions(job, pipeline=pipe)
            pipe.zadd(PENDING, {job.id: current})
            pipe.execute()
        logs.log(logger, "retry.recovered", logging.WARNING, job_id=job.id)
        recovered += 1
    RETRIES.labels("recovered").inc(recovered)
    return recovered


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
