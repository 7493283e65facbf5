"""The resend schedule: resends kept in Redis in due-time order, with backoff, until they go out.

A resend is one small item, not an RQ job: its id (the event id) in the sorted set `DUE`
scored by when it is due, and in the hash `ITEMS` the event as the webhook stored it (not the
enriched copy with both languages' catalog text), its route's name and retry schedule, the
attempt, and whether its 2xx writes the ledger. The drain job writes items in the
transaction that finishes its batch (`schedule_first`); `workers.resend.sender.send_due`, one RQ job
for many resends, claims due items in batches under a lease (`claim`), POSTs them and settles
each: done (`forget`), rescheduled after `next_delay` (`reschedule`), handed back unsent
(`release`), or exhausted (`alert_instead`, and a dead letter).

A claimed item sits in `INFLIGHT`, scored by when its lease ends; a sender renews the lease
while it works. If the sender dies, the next `claim` (any worker's) puts the item back in `DUE`
once the lease has ended, so a crash between claiming and posting resends the event once; a
crash after the POST and before the settle resends it again, with the same `webhook-id`.

A 429 or 503 from the resend endpoint holds the whole endpoint (`HOLD`) until its Retry-After:
`claim` hands nothing out before then. `WASTATUS_RETRY_RATE` caps resends per second over all
workers with a token bucket (`BUCKET`) kept in the same script.

`resend(event, route, attempt)`, the RQ job of earlier versions, still runs for jobs queued
before an upgrade: it moves its resend into `DUE`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import orjson
import redis
from prometheus_client import Counter, Histogram

from workers import fastjson, logs
from workers.alerting import groups
from workers.inbox.enrich import enrich, primary_error
from workers.jobs import FAILURE_TTL, job_connection
from workers.queues import RETRY, get_queue
from workers.routing.router import route as route_event
from workers.routing.rules import RetrySchedule, Route, current_rules

SEND_JOB = "workers.resend.sender.send_due"
LEGACY_JOB = "workers.retry.resend"
"""The one-job-per-resend entry point of earlier versions; jobs queued under it still run."""

DUE = "wastatus:retry:due"
"""Sorted set: resend id (the event id) → when it is due (Unix seconds)."""

ITEMS = "wastatus:retry:items"
"""Hash: resend id → JSON {event, ledger, route, retry, attempt} (the event as stored)."""

INFLIGHT = "wastatus:retry:inflight"
"""Sorted set: resend id → when the lease of the sender that claimed it ends."""

CRASHES = "wastatus:retry:crashes"
"""Hash: resend id → times its lease ended before it was settled (its sender died)."""

HOLD = "wastatus:retry:hold"
"""When the resend endpoint may be asked again, after it answered 429 or 503 (Unix seconds)."""

BUCKET = "wastatus:retry:bucket"
"""Hash {tokens, at}: the token bucket of `WASTATUS_RETRY_RATE`."""

SEND_FLAG = "wastatus:retry:send-scheduled"
"""Set while a sender job is queued; the job deletes it when it starts (as the drain flag)."""

WAKE = "wastatus:retry:wake"
"""When the earliest sender job waiting in RQ's scheduler is due (Unix seconds)."""

PENDING = "wastatus:retry:pending"
"""Earlier versions' sorted set of resend job ids; `resend` clears its entry."""

SEND_FLAG_SECONDS = 10
HOLD_WITHOUT_RETRY_AFTER = 1.0
"""How long a 429 or 503 that names no Retry-After holds the endpoint."""
MAX_HOLD_SECONDS = 3600.0
"""The longest hold a Retry-After can ask for (an HTTP date far off is a mistake, not a plan)."""

logger = logging.getLogger("wastatus.retry")

RETRIES = Counter(
    "wastatus_retries",
    "Resend requests by outcome (scheduled, delivered, rescheduled, exhausted, no_endpoint,"
    " recovered, held).",
    ["outcome"],
)
RESEND_SECONDS = Histogram(
    "wastatus_resend_request_seconds",
    "Duration of POSTs to the resend endpoint.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

_SCHEDULE = """
local due, items = KEYS[1], KEYS[2]
local added = 0
for i = 1, #ARGV, 3 do
  if redis.call('HSETNX', items, ARGV[i], ARGV[i + 2]) == 1 then
    redis.call('ZADD', due, ARGV[i + 1], ARGV[i])
    added = added + 1
  end
end
return added
"""

_CLAIM = """
local due, items, inflight, crashes, hold, bucket = KEYS[1], KEYS[2], KEYS[3], KEYS[4],
  KEYS[5], KEYS[6]
local now, batch, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local rate = tonumber(ARGV[4])
-- the leases of dead senders: their items are due again, with a crash counted
local expired = redis.call('ZRANGEBYSCORE', inflight, '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do
  redis.call('ZREM', inflight, id)
  if redis.call('HEXISTS', items, id) == 1 then
    redis.call('HINCRBY', crashes, id, 1)
    redis.call('ZADD', due, now, id)
  else
    redis.call('HDEL', crashes, id)
  end
end
local held = tonumber(redis.call('GET', hold) or '0')
if held > now then return {'held', tostring(held), #expired} end
local take, tokens = batch, 0
if rate > 0 then
  local burst = math.max(1, rate)
  local state = redis.call('HMGET', bucket, 'tokens', 'at')
  tokens = tonumber(state[1] or burst)
  local at = tonumber(state[2] or now)
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
  take = math.min(batch, math.floor(tokens))
  if take < 1 then
    redis.call('HSET', bucket, 'tokens', tostring(tokens), 'at', tostring(now))
    return {'rate', tostring(now + (1 - tokens) / rate), #expired}
  end
end
local ids = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, take)
if rate > 0 then
  redis.call('HSET', bucket, 'tokens', tostring(tokens - #ids), 'at', tostring(now))
end
if #ids == 0 then
  local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
  return {'idle', first[2] or '', #expired}
end
redis.call('ZREM', due, unpack(ids))
local found, counts = {}, {}
for i, id in ipairs(ids) do
  found[i] = redis.call('HGET', items, id) or ''
  counts[i] = redis.call('HGET', crashes, id) or '0'
  if found[i] ~= '' then redis.call('ZADD', inflight, lease, id) end
end
local reply = {'claimed', '', #expired}
for i = 1, #ids do
  reply[#reply + 1] = ids[i]
  reply[#reply + 1] = found[i]
  reply[#reply + 1] = counts[i]
end
return reply
"""

_RENEW = """
for i = 1, #ARGV - 1 do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[#ARGV], ARGV[i])
end
return 1
"""

_WAKE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
local at, now = tonumber(ARGV[1]), tonumber(ARGV[2])
-- RQ queues a wake-up once its whole second has begun: one whose second is still ahead, and
-- not later than `at`, will do
if current >= 0 and current <= at and math.floor(current) > now then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', math.max(60, math.ceil(at - now) + 60))
return 1
"""

_HOLD = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local until_ = tonumber(ARGV[1])
if until_ > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', math.max(1, math.ceil(ARGV[2] * 1000)))
end
return 1
"""


@dataclass(frozen=True)
class Item:
    """One resend: the event as stored, how its route retries, and which attempt is next."""

    id: str
    event: dict
    route: str
    schedule: RetrySchedule
    attempt: int
    ledger: bool = True
    crashes: int = 0

    def to_json(self) -> bytes:
        return fastjson.dumps(
            {
                "event": self.event,
                "ledger": self.ledger,
                "route": self.route,
                "retry": self.schedule.to_dict(),
                "attempt": self.attempt,
            }
        )

    @classmethod
    def from_json(cls, resend_id: str, raw: bytes, crashes: int = 0) -> Item:
        data = fastjson.loads(raw)
        return cls(
            id=resend_id,
            event=data["event"],
            route=data["route"],
            schedule=RetrySchedule.from_dict(data["retry"]),
            attempt=int(data["attempt"]),
            ledger=bool(data.get("ledger", True)),
            crashes=crashes,
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


def stored_event(event: Mapping) -> dict:
    """The event as the webhook stored it: without what enrichment and routing added (and the
    `ledger` flag that events carried into resend jobs of earlier versions)."""
    return {
        key: value
        for key, value in event.items()
        if key not in ("code", "catalog", "ledger", "retry_exhausted")
    }


def item_for(event: Mapping, chosen: Route, attempt: int = 1, ledger: bool = True) -> Item:
    """The resend of enriched `event` on retry route `chosen`; `ledger` is whether its 2xx
    writes the event's ledger entry (not when an alert route took the event too)."""
    return Item(
        id=event["event_id"],
        event=stored_event(event),
        route=chosen.name,
        schedule=chosen.retry or RetrySchedule(),
        attempt=attempt,
        ledger=ledger,
    )


def schedule_first(
    pipe: redis.client.Pipeline, items: list[tuple[dict, Route, bool]], now: float
) -> float | None:
    """Write the first resend of each (enriched event, route, writes the ledger) on `pipe`: due
    at once, or after the catalog's minimum. Returns the earliest due time, for `wake` once
    `pipe` has run."""
    if not items:
        return None
    args: list = []
    earliest = math.inf
    for event, chosen, writes_ledger in items:
        due = now + max(0.0, min_delay(event))
        earliest = min(earliest, due)
        args += [
            event["event_id"],
            repr(due),
            item_for(event, chosen, ledger=writes_ledger).to_json(),
        ]
    pipe.register_script(_SCHEDULE)(keys=[DUE, ITEMS], args=args, client=pipe)
    RETRIES.labels("scheduled").inc(len(items))
    return earliest


def wake(connection: redis.Redis, due: float | None, now: float | None = None) -> None:
    """See that a sender job runs when `due` comes: queued now if it has, else scheduled."""
    if due is None:
        return
    current = time.time() if now is None else now
    if due <= current:
        request_send(connection)
    else:
        schedule_wake(connection, due, current)


def request_send(connection: redis.Redis) -> bool:
    """Queue a sender job unless one is already queued (the flag says so)."""
    if connection.set(SEND_FLAG, "1", nx=True, ex=SEND_FLAG_SECONDS):
        get_queue(connection, RETRY).enqueue(SEND_JOB, result_ttl=0, failure_ttl=FAILURE_TTL)
        return True
    return False


def schedule_wake(connection: redis.Redis, at: float, now: float | None = None) -> bool:
    """Have RQ's scheduler queue a sender job at `at`, unless an earlier one is scheduled.

    RQ keeps whole seconds and queues a job once its second has begun, so the sender may start
    up to a second early; it then waits for the item (`workers.resend.sender.send_due`)."""
    current = time.time() if now is None else now
    schedule = connection.register_script(_WAKE)
    if not schedule(keys=[WAKE], args=[repr(at), repr(current)]):
        return False
    get_queue(connection, RETRY).enqueue_at(
        dt.datetime.fromtimestamp(math.floor(at), dt.UTC),
        SEND_JOB,
        job_id=f"wastatus-sender-wake-{math.floor(at)}",
        result_ttl=0,
        failure_ttl=FAILURE_TTL,
    )
    return True


@dataclass(frozen=True)
class Claim:
    """What `claim` gave: items, or why none (`held` until, `rate` until, `idle` next due)."""

    items: list[Item]
    state: str
    until: float | None
    recovered: int


def claim(
    connection: redis.Redis, batch: int, lease: float, rate: float = 0.0, now: float | None = None
) -> Claim:
    """Move up to `batch` due items into `INFLIGHT` under a lease of `lease` seconds."""
    current = time.time() if now is None else now
    script = connection.register_script(_CLAIM)
    reply = script(
        keys=[DUE, ITEMS, INFLIGHT, CRASHES, HOLD, BUCKET],
        args=[repr(current), batch, repr(current + lease), repr(rate)],
    )
    state, until, recovered = reply[0].decode(), reply[1], int(reply[2])
    items = []
    for n in range(3, len(reply), 3):
        resend_id, raw, crashes = reply[n].decode(), reply[n + 1], int(reply[n + 2])
        if raw:  # an id without an item (removed by hand, say) has nothing to send
            items.append(Item.from_json(resend_id, raw, crashes))
    if recovered:
        RETRIES.labels("recovered").inc(recovered)
        logs.log(logger, "retry.recovered", logging.WARNING, resends=recovered)
    return Claim(items, state, float(until) if until else None, recovered)


def renew(connection: redis.Redis, ids: Iterable[str], lease_until: float) -> None:
    """Extend the lease of the items `ids` this sender still holds."""
    ids = list(ids)
    if ids:
        connection.register_script(_RENEW)(keys=[INFLIGHT], args=[*ids, repr(lease_until)])


def hold(connection: redis.Redis, until: float, now: float | None = None) -> None:
    """Hold the resend endpoint until `until` (never shortening a longer hold)."""
    current = time.time() if now is None else now
    seconds = min(MAX_HOLD_SECONDS, until - current)
    if seconds > 0:
        connection.register_script(_HOLD)(keys=[HOLD], args=[repr(current + seconds), seconds])


def release(pipe: redis.Redis, items: Iterable[Item], due: float) -> None:
    """Hand claimed items back unsent, due at `due`, with no attempt used (joins a pipeline)."""
    ids = [item.id for item in items]
    if ids:
        pipe.zadd(DUE, dict.fromkeys(ids, due))
        pipe.zrem(INFLIGHT, *ids)


def reschedule(pipe: redis.Redis, item: Item, due: float) -> None:
    """The next attempt of `item`, due at `due` (joins a pipeline)."""
    following = replace(item, attempt=item.attempt + 1)
    pipe.hset(ITEMS, item.id, following.to_json())
    pipe.zadd(DUE, {item.id: due})
    pipe.zrem(INFLIGHT, item.id)
    pipe.hdel(CRASHES, item.id)


def forget(pipe: redis.Redis, ids: Iterable[str]) -> None:
    """Remove settled items for good (joins a pipeline)."""
    ids = list(ids)
    if ids:
        pipe.hdel(ITEMS, *ids)
        pipe.zrem(INFLIGHT, *ids)
        pipe.zrem(DUE, *ids)
        pipe.hdel(CRASHES, *ids)


def next_due(connection: redis.Redis) -> float | None:
    """When the earliest resend is due, or the hold ends if that is later; None if none wait."""
    with connection.pipeline(transaction=False) as pipe:
        pipe.zrange(DUE, 0, 0, withscores=True)
        pipe.get(HOLD)
        first, held = pipe.execute()
    if not first:
        return None
    return max(first[0][1], float(held or 0))


def waiting(connection: redis.Redis) -> dict[str, int]:
    """Resends waiting (due now or later) and being sent, for status and tests."""
    with connection.pipeline(transaction=False) as pipe:
        pipe.zcard(DUE)
        pipe.zcount(DUE, "-inf", time.time())
        pipe.zcard(INFLIGHT)
        total, due_now, inflight = pipe.execute()
    return {"scheduled": total, "due": due_now, "sending": inflight}


def recover(connection: redis.Redis) -> int:
    """Worker maintenance: put the items of dead senders back and wake a sender for what is
    due (a lost wake-up, a lost sender job); returns the items put back."""
    found = claim(connection, 0, 0.0)
    upcoming = next_due(connection)
    if upcoming is not None:
        wake(connection, upcoming)
    return found.recovered


def request_body(event: Mapping, attempt: int) -> bytes:
    """What the resend endpoint receives: the enriched event, its error and the attempt."""
    body = {**event, "attempt": attempt, "error": primary_error(dict(event))}
    try:
        # orjson writes what json.dumps(ensure_ascii=False) wrote, several times faster
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def resend(event: dict, route: dict, attempt: int) -> dict:
    """RQ job of earlier versions (one per resend): move this resend into `DUE`, due now."""
    connection = job_connection()
    chosen = Route.from_dict(route)
    # Earlier versions flagged, inside the event, a resend whose 2xx writes no ledger entry.
    item = item_for(event, chosen, attempt, ledger=bool(event.get("ledger", True)))
    now = time.time()
    with connection.pipeline(transaction=True) as pipe:
        pipe.register_script(_SCHEDULE)(
            keys=[DUE, ITEMS], args=[item.id, repr(now), item.to_json()], client=pipe
        )
        pipe.zrem(PENDING, f"wastatus-resend-{item.id}-{attempt}")
        pipe.execute()
    request_send(connection)
    return {"outcome": "moved", "resend_id": item.id, "attempt": attempt}


def alert_instead(connection: redis.Redis, failures: list[tuple[Item, int, str]]) -> None:
    """Alert each item's event on the routes it takes when resending is off ("retry
    exhausted"), with the attempts made and why: `failures` is [(item, attempts, reason)]."""
    if not failures:
        return
    rules = current_rules()
    off = replace(rules, resend_enabled=False)
    by_route: dict[str, tuple[Route, list[dict]]] = {}
    for item, attempts, reason in failures:
        event = enrich(item.event)
        taken = route_event(event, off)
        chosen = [route for route in taken if route.action == "alert"] or [rules.alert_route]
        flagged = {
            **event,
            "retry_exhausted": True,
            "retry_attempts": attempts,
            "retry_reason": reason,
        }
        for route in chosen:
            by_route.setdefault(route.name, (route, []))[1].append(flagged)
    for route, events in by_route.values():
        groups.submit(connection, events, route)
