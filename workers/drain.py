"""The drain job: takes failed events from the inbox in batches, enriches and routes them.

One RQ job handles many batches (one job per event would cap throughput at RQ's job rate).
Each batch is moved atomically from the inbox into a processing list of the job's own,
guarded by a lease key; the batch's effects (resends, ledger, stats) are written in one
MULTI/EXEC together with the deletion of that list, so they land entirely or not at all.
Alert groups are the exception: `groups.submit` commits before that MULTI, so a batch that
dies between the two is submitted again. That is safe because a submit is idempotent: a group
adds an event id it already holds (SADD) once and counts it once. If the worker dies
mid-batch, the lease expires and the next drain job moves the list back to the inbox,
counting a delivery per event; events with earlier deliveries are then processed one at a
time, and one that reaches `max_deliveries` goes to the dead letters
instead of crashing jobs forever. Crashes propagate to RQ's failed-job registry.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import redis
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram

from workers import bounds
from workers.alerting import groups
from workers.fates import late
from workers.health import tracker
from workers.inbox.enrich import enrich
from workers.inbox.intake import DRAIN_FLAG, DRAIN_FLAG_SECONDS, INBOX, schedule_drain
from workers.jobs import job_connection
from workers.outcomes import deadletters, funnels, ledger, stats
from workers.resend import schedule
from workers.routing.router import route
from workers.routing.rules import Route, Rules, current_rules
from workers.settings import Settings, current

PROCESSING_PREFIX = "wastatus:inbox:processing:"
"""`PROCESSING_PREFIX + token`: the events one drain job claimed and has not finished."""

LEASE_PREFIX = "wastatus:inbox:lease:"
"""`LEASE_PREFIX + token`: exists (with a TTL) while the job holding `token` is alive."""

CLAIMS = "wastatus:inbox:claims"
"""Set of the tokens whose processing lists may exist (scanned for orphans, not the keyspace)."""

DELIVERIES = "wastatus:inbox:deliveries"
"""Hash sha1(event JSON) → times the event was handed out in a batch that never finished."""

FAILURES = PromCounter(
    "wastatus_failures",
    "Failed events enriched by the drain job, by api, code and category.",
    ["api", "code", "category"],
)
EVENTS_PROCESSED = PromCounter(
    "wastatus_events_processed",
    "Events routed by the drain job, by action (alert, retry, drop, dead).",
    ["action"],
)
EVENTS_RECOVERED = PromCounter(
    "wastatus_events_recovered",
    "Events moved back to the inbox from the batch of a drain job that died.",
)
DRAIN_SECONDS = Histogram(
    "wastatus_drain_job_seconds",
    "Run time of drain jobs.",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 15, 30, 60),
)
EVENT_LAG = Histogram(
    "wastatus_event_lag_seconds",
    "Time from webhook received to the event routed.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)

_CLAIM = """
redis.call('SET', KEYS[3], '1', 'EX', ARGV[2])
local all = redis.call('LRANGE', KEYS[1], -tonumber(ARGV[1]), -1)
if #all == 0 then return {0} end
local items, suspect = all, 0
if redis.call('HLEN', KEYS[4]) > 0 then
  for j = #all, 1, -1 do
    local count = tonumber(redis.call('HGET', KEYS[4], redis.sha1hex(all[j])) or '0')
    if count > 0 then
      if j == #all then
        items, suspect = {all[j]}, count
      else
        items = {unpack(all, j + 1, #all)}
      end
      break
    end
  end
end
redis.call('LTRIM', KEYS[1], 0, -#items - 1)
redis.call('RPUSH', KEYS[2], unpack(items))
redis.call('SADD', KEYS[5], ARGV[3])
return {suspect, unpack(items)}
"""

_RECOVER = """
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local items = redis.call('LRANGE', KEYS[1], 0, -1)
for _, item in ipairs(items) do
  redis.call('HINCRBY', KEYS[4], redis.sha1hex(item), 1)
  redis.call('RPUSH', KEYS[3], item)
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[5], ARGV[1])
return #items
"""


def drain_inbox() -> dict:
    """RQ job: drain the inbox for up to the time box; re-enqueue itself if work remains."""
    connection = job_connection()
    connection.delete(DRAIN_FLAG)
    settings = current()
    rules = current_rules()
    started = time.monotonic()
    done: Counter = Counter(recovered=recover_orphans(connection))
    token = uuid.uuid4().hex
    try:
        while True:  # at least one batch per job, however short the time box
            claimed = claim(connection, token, settings)
            if claimed is None:
                break
            process_batch(connection, token, claimed, rules, settings, done)
            done["batches"] += 1
            if time.monotonic() - started >= settings.drain_seconds:
                break
    except Exception:
        # Not swallowed: hand the batch back at once and ask for a drain, then re-raise so
        # the job lands in the failed registry with its traceback.
        _release_after_crash(connection, token)
        raise
    connection.delete(LEASE_PREFIX + token)
    remaining = connection.llen(INBOX)
    if remaining:
        request_drain(connection)
    DRAIN_SECONDS.observe(time.monotonic() - started)
    return {**done, "remaining": remaining}


def _release_after_crash(connection: redis.Redis, token: str) -> None:
    try:
        connection.delete(LEASE_PREFIX + token)
        if connection.exists(PROCESSING_PREFIX + token):
            request_drain(connection)
    except redis.RedisError:
        pass  # Redis itself failed: the lease expires and the next drain recovers the batch


def request_drain(connection: redis.Redis) -> bool:
    """Queue a drain job unless one is already queued (the intake's flag says so)."""
    if connection.set(DRAIN_FLAG, "1", nx=True, ex=DRAIN_FLAG_SECONDS):
        schedule_drain(connection)
        return True
    return False


@dataclass(frozen=True)
class Claimed:
    """A batch claimed into a processing list; `deliveries` > 0 marks a lone suspect event."""

    items: list[bytes]
    deliveries: int


def claim(connection: redis.Redis, token: str, settings: Settings) -> Claimed | None:
    """Move up to a batch of events from the inbox into this job's processing list."""
    keys = [INBOX, PROCESSING_PREFIX + token, LEASE_PREFIX + token, DELIVERIES, CLAIMS]
    result = connection.register_script(_CLAIM)(
        keys=keys, args=[settings.drain_batch, math.ceil(settings.drain_lease), token]
    )
    if len(result) < 2:
        return None
    return Claimed(result[1:], int(result[0]))


def recover_orphans(connection: redis.Redis) -> int:
    """Move the batches of drain jobs whose lease expired back to the inbox; returns events."""
    recovered = 0
    script = connection.register_script(_RECOVER)
    for raw_token in connection.smembers(CLAIMS):
        token = raw_token.decode()
        keys = [PROCESSING_PREFIX + token, LEASE_PREFIX + token, INBOX, DELIVERIES, CLAIMS]
        moved = int(script(keys=keys, args=[token]))
        if moved > 0:
            recovered += moved
    EVENTS_RECOVERED.inc(recovered)
    return recovered


def process_batch(
    connection: redis.Redis,
    token: str,
    claimed: Claimed,
    rules: Rules,
    settings: Settings,
    done: Counter,
) -> None:
    """Enrich and route one claimed batch, then commit its effects and release it atomically."""
    processing = PROCESSING_PREFIX + token
    if claimed.deliveries >= settings.drain_max_deliveries:
        _bury(connection, token, claimed.items[0], claimed.deliveries)
        done["dead"] += 1
        return
    now = time.time()
    events = [_read(item) for item in claimed.items]
    # Account, template and number health events have their own path (workers.health).
    health_events = [event for event in events if event.get("kind") == "health"]
    enriched = [enrich(event) for event in events if event.get("kind") != "health"]
    to_alert: dict[str, tuple[Route, list[dict]]] = {}
    to_retry: list[tuple[dict, Route, bool]] = []
    dropped: list[str] = []
    for event in enriched:
        taken = route(event, rules)
        alerted = any(chosen.action == "alert" for chosen in taken)
        for chosen in taken:
            if chosen.action == "alert":
                to_alert.setdefault(chosen.name, (chosen, []))[1].append(event)
            elif chosen.action == "retry":
                # When an alert route took the event too, the alert side owns its ledger entry.
                to_retry.append((event, chosen, not alerted))
            elif not alerted:
                dropped.append(event["event_id"])
    if health_events:
        dropped.extend(tracker.process(connection, health_events, rules, settings, now))
        done["health"] += len(health_events)
    tracker.join(connection, enriched)  # failures of paused templates, restricted accounts
    alerted = []  # (wamid, gid) of failed statuses: a later delivered shows in the group
    for chosen, events in to_alert.values():
        groups.submit(connection, events, chosen, settings)
        alerted += [(event.get("message_id"), groups.group_id(groups.group_label(event, chosen)))
                    for event in events if event.get("kind") == "status"]  # fmt: skip
    with connection.pipeline(transaction=True) as pipe:
        first_due = schedule.schedule_first(pipe, to_retry, now)
        ledger.record(pipe, "dropped", dropped, now)
        stats.record(pipe, enriched, now)
        funnels.record_failed(pipe, enriched, settings.funnel_retention, now)
        late.remember(pipe, alerted, now)  # about 20 bytes a failure, for everyone
        if claimed.deliveries:
            pipe.hdel(DELIVERIES, *(hashlib.sha1(item).hexdigest() for item in claimed.items))
        pipe.delete(processing)
        pipe.srem(CLAIMS, token)
        pipe.execute()
    schedule.wake(connection, first_due, now)
    _count(enriched, to_alert, to_retry, dropped, now, done)


def _count(enriched, to_alert, to_retry, dropped, now, done: Counter) -> None:
    failures = Counter(
        (event.get("api") or "unknown", _code_label(event), event["catalog"]["category"])
        for event in enriched
    )
    for labels, count in failures.items():
        FAILURES.labels(*labels).inc(count)
    alerted = sum(len(events) for _, events in to_alert.values())
    for action, count in (("alert", alerted), ("retry", len(to_retry)), ("drop", len(dropped))):
        if count:
            EVENTS_PROCESSED.labels(action).inc(count)
            done[action] += count
    done["events"] += len(enriched)
    for event in enriched:
        received = event.get("received_at")
        if isinstance(received, (int, float)):
            EVENT_LAG.observe(max(0.0, now - received))


def _code_label(event: dict) -> str:
    """The code as a metric label: codes the catalog knows, else "other". A series per code
    ever sent would let random codes grow /metrics and the exported hash without bound."""
    return str(event["code"]) if event["catalog"].get("known") else "other"


def _read(item: bytes) -> dict:
    """A stored event; one an older version stored with escaped lone surrogates is cleaned,
    so that nothing downstream (alert samples, dead letters) fails to encode it."""
    event = json.loads(item)
    return bounds.clean(event) if bounds.may_hold_surrogates(item) else event


RAW_MAX = 64 * 1024
"""Characters kept of a buried item that is not a JSON object (its start tells what it was)."""


def _buried_form(item: bytes) -> dict:
    """What a dead letter keeps of a poison item: the event, cleaned, or the item as text.
    Neither can fail to encode, so burying cannot become a poison of its own."""
    try:
        event = bounds.clean(json.loads(item))
    except (ValueError, RecursionError):
        event = None
    if not isinstance(event, dict):
        event = {"raw": bounds.text(item.decode("utf-8", "replace"), RAW_MAX)}
    return event


def _bury(connection: redis.Redis, token: str, item: bytes, deliveries: int) -> None:
    """A poison event: into the dead letters (kind "event") and the ledger as "dead"."""
    event = _buried_form(item)
    reason = f"its drain batch crashed or died {deliveries} times"
    with connection.pipeline(transaction=True) as pipe:
        deadletters.put(pipe, "event", {"event": event, "deliveries": deliveries}, reason)
        if isinstance(event.get("event_id"), str):
            ledger.record(pipe, "dead", [event["event_id"]])
        pipe.hdel(DELIVERIES, hashlib.sha1(item).hexdigest())
        pipe.delete(PROCESSING_PREFIX + token)
        pipe.srem(CLAIMS, token)
        pipe.execute()
    EVENTS_PROCESSED.labels("dead").inc()
