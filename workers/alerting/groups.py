"""Alert groups, Alertmanager style: many failures of one cause become one notification.

`submit` (called by the drain job with a batch of enriched events and their route) drops the
silenced events, sorts the rest into groups by the route's `group_by`, and adds each group's
events with ONE Lua call per group, all pipelined: no RQ job per event. A group's first event
schedules a flush after `group_wait`; the flush turns the events gathered so far into a
notification (status "firing"); events arriving later are sent as an "update" no sooner than
`group_interval` after the last notification; a group without new events "repeat"s after
`repeat_interval`, and closes after `WASTATUS_GROUP_RESOLVE` (default 24 h) without events.

Restarts neither repeat nor lose a notification: each group hash records the id of the one
flush job allowed to act (`job`) and when it is due; a job whose id does not match does nothing,
and `recover` re-issues jobs that are overdue (lost with a killed worker or a Redis restart).
The flush moves the group's pending event ids into the notification atomically, so an event is
in exactly one notification; `workers.alerting.notifications` delivers it and writes the ledger.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Collection, Mapping

import redis
import rq
from prometheus_client import Counter

from workers import bounds
from workers.alerting import alertmanager, fate_text, health_text, notifications, silences
from workers.jobs import (
    Lock,
    current_job_id,
    decode_hash,
    enqueue_once,
    job_connection,
    new_id,
    overdue,
)
from workers.logs import PHONE_FIELDS, mask_phone
from workers.outcomes import ledger
from workers.queues import ALERTS, get_queue
from workers.routing import router
from workers.routing.rules import DEFAULT_GROUP_BY, Route
from workers.settings import Settings, current

PREFIX = notifications.GROUP_PREFIX
"""`PREFIX + gid`: hash of a group's state; `:pending` (set of event ids not yet in a
notification), `:sample` (list of the latest alert items), `:events` (the group's events,
compact, newest first, at most WASTATUS_GROUP_EVENTS) and `:notifications`
(`notifications.index_key`) hang off it, and go with it when it closes."""

GROUPS = "wastatus:alerts:groups"
"""Sorted set of open group ids, scored by the time their next flush is due."""

SAMPLE_SIZE = 20
"""How many alert items a notification carries at most (the latest ones)."""

SAMPLE_TEXT_MAX = 256
"""Characters an alert item keeps of each text Meta reported (title, message, details, href):
the catalog explains the code; the reported words only need to be recognisable. With the
catalog's text, an item stays under about 4 KB, a group's sample under about 80 KB."""

EVENT_FIELDS = ("message_id", "recipient_id", "code", "timestamp", "phone_number_id", "event",
                "entity")  # fmt: skip
"""What the `:events` list keeps of each alert item, as a JSON array in this order without its
trailing nulls; null too where the group's labels (`group_by`) hold the value, which every
event of the group shares (80 to 100 bytes a Cloud API failure; `event` and `entity` name a
health event)."""

RECOVER_GRACE_SECONDS = 60.0
"""A flush or delivery this overdue is taken as lost and issued again."""

EARLY_TOLERANCE_SECONDS = 0.05
FLUSH_JOB = "workers.alerting.groups.flush_group"

EVENTS_GROUPED = Counter(
    "wastatus_alert_events_grouped",
    "Failure events added to alert groups, by route.",
    ["route"],
)
FLUSHES = Counter(
    "wastatus_alert_flushes",
    "Alert group flushes, by what they did (firing, update, repeat, idle, closed, stale).",
    ["result"],
)

_SUBMIT = """
local g, p, s, z, ev = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = tonumber(ARGV[2])
local nsamples = tonumber(ARGV[10])
local added = 0
-- (event id, compact entry) pairs: an event is listed once, as it is counted once
for i = 12 + nsamples, #ARGV, 2 do
  if redis.call('SADD', p, ARGV[i]) == 1 then
    added = added + 1
    redis.call('LPUSH', ev, ARGV[i + 1])
  end
end
if added == 0 then return {0, '', ''} end
redis.call('LTRIM', ev, 0, tonumber(ARGV[11]) - 1)
for i = 12, 11 + nsamples do redis.call('LPUSH', s, ARGV[i]) end
redis.call('LTRIM', s, 0, tonumber(ARGV[9]) - 1)
redis.call('HINCRBY', g, 'count', added)
if redis.call('HSETNX', g, 'first_seen', ARGV[3]) == 0 then
  if tonumber(ARGV[3]) < tonumber(redis.call('HGET', g, 'first_seen')) then
    redis.call('HSET', g, 'first_seen', ARGV[3])
  end
else
  -- a new group (maybe of a closed one's key): job ids start from the clock, never reused
  redis.call('HSET', g, 'seq', string.format('%d', math.floor(now * 1000) * 1000))
end
if tonumber(ARGV[4]) > tonumber(redis.call('HGET', g, 'last_seen') or '0') then
  redis.call('HSET', g, 'last_seen', ARGV[4])
end
redis.call('HSET', g, 'meta', ARGV[5], 'group_key', ARGV[8], 'touched_at', ARGV[2])
local due = tonumber(redis.call('HGET', g, 'due') or '-1')
local notified = tonumber(redis.call('HGET', g, 'notified_at') or '-1')
local want
if notified < 0 then
  if due >= 0 then return {added, '', ''} end
  want = now + tonumber(ARGV[6])
else
  want = math.max(now, notified + tonumber(ARGV[7]))
  -- `due` was stored with 3 decimals: within a millisecond it is the same flush
  if due >= 0 and due <= want + 0.001 then return {added, '', ''} end
end
local seq = redis.call('HINCRBY', g, 'seq', 1)
local job = 'wastatus-flush-' .. ARGV[1] .. '-' .. string.format('%d', seq)
redis.call('HSET', g, 'due', string.format('%.3f', want), 'job', job)
redis.call('ZADD', z, want, ARGV[1])
return {added, job, string.format('%.3f', want)}
"""

_FLUSH = (
    notifications.RECORD_LUA
    + """
local g, p, s, z, n, ne, outbox = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local gid, now, nid = ARGV[1], tonumber(ARGV[2]), ARGV[4]
local resolve, tolerance = tonumber(ARGV[5]), tonumber(ARGV[6])
if redis.call('HGET', g, 'job') ~= ARGV[3] then
  if ARGV[3] ~= '' and redis.call('HGET', g, 'last_flush_job') == ARGV[3] then
    -- this job made the last notification and died after: hand back its unfinished work
    return {'stale', redis.call('HGET', g, 'job'), redis.call('HGET', g, 'due'),
            redis.call('HGET', g, 'last_nid')}
  end
  return {'stale', '', ''}
end
local due = tonumber(redis.call('HGET', g, 'due'))
local function reschedule(at)
  local seq = redis.call('HINCRBY', g, 'seq', 1)
  local job = 'wastatus-flush-' .. gid .. '-' .. string.format('%d', seq)
  redis.call('HSET', g, 'due', string.format('%.3f', at), 'job', job)
  redis.call('ZADD', z, at, gid)
  return job
end
if now + tolerance < due then
  return {'early', reschedule(due), string.format('%.3f', due)}
end
local meta = cjson.decode(redis.call('HGET', g, 'meta'))
local notified = tonumber(redis.call('HGET', g, 'notified_at') or '-1')
local touched = tonumber(redis.call('HGET', g, 'touched_at'))
local pending = redis.call('SCARD', p)
local status = ''
if pending > 0 then
  if notified < 0 then status = 'firing' else status = 'update' end
elseif now >= touched + resolve then
  redis.call('DEL', g, p, s, KEYS[10], KEYS[11])
  redis.call('ZREM', z, gid)
  -- an alert kept firing in Alertmanager ends with the group, even if this job dies now
  if redis.call('HEXISTS', KEYS[8], gid) == 1 then redis.call('HSET', KEYS[9], gid, ARGV[2]) end
  return {'closed', '', ''}
elseif notified >= 0 and now + tolerance >= notified + meta.repeat_interval then
  status = 'repeat'
end
if status == '' then
  local at = touched + resolve
  if notified >= 0 then at = math.min(at, notified + meta.repeat_interval) end
  return {'idle', reschedule(at), string.format('%.3f', at)}
end
local count = redis.call('HGET', g, 'count')
if pending > 0 then redis.call('RENAME', p, ne) end
open_record(n, outbox, nid, now, {'gid', gid, 'group_key', redis.call('HGET', g, 'group_key'),
  'status', status, 'count', count, 'events', pending,
  'first_seen', redis.call('HGET', g, 'first_seen'),
  'last_seen', redis.call('HGET', g, 'last_seen'),
  'sample', cjson.encode(redis.call('LRANGE', s, 0, -1)), 'meta', redis.call('HGET', g, 'meta'),
  'later_delivered', redis.call('HGET', g, 'later_delivered') or '0'}, 7, g, KEYS[11])
redis.call('HSET', g, 'notified_at', ARGV[2], 'notified_count', count,
  'last_flush_job', ARGV[3], 'last_nid', nid)
local at = math.min(now + meta.repeat_interval, math.max(now, touched + resolve))
return {status, reschedule(at), string.format('%.3f', at)}
"""
)


def group_hash(gid: str) -> str:
    return PREFIX + gid


def events_key(gid: str) -> str:
    return group_hash(gid) + ":events"


def sample_key(gid: str) -> str:
    """The group's latest alert items, newest first (at most SAMPLE_SIZE)."""
    return group_hash(gid) + ":sample"


def _keys(gid: str) -> list[str]:
    base = group_hash(gid)
    return [base, base + ":pending", sample_key(gid), GROUPS]


def _more_keys(gid: str) -> list[str]:
    """The keys a flush or close script takes after its notification's (KEYS[10], KEYS[11])."""
    return [events_key(gid), notifications.index_key(gid)]


MASKED_KEYS = PHONE_FIELDS | {"recipient_prefix"}
"""group_by fields that hold a phone number: shown masked, as `recipient_id` is."""


def group_label(event: Mapping, route: Route, show_pii: bool = True) -> str:
    """The readable group key: route name, then each group_by field's value.

    With `show_pii` false, phone numbers show their last four digits only: the key is
    stored, sent in every notification and shown by `wastatus status`. Groups are told apart
    by the whole key (`group_id` of the label with `show_pii`), so two numbers ending alike
    stay two groups.
    """
    parts = [f"{name}={value}" for name, value in group_labels(event, route, show_pii).items()]
    label = f"{route.name}:{','.join(parts)}"
    return label + ":retry_exhausted" if event.get("retry_exhausted") else label


def group_labels(event: Mapping, route: Route, show_pii: bool = True) -> dict:
    """The group's `group_by` fields and their values (phone numbers masked unless
    `show_pii`): what every event of the group shares, for the key and Alertmanager's labels."""
    found = {}
    for name in route.group_by or DEFAULT_GROUP_BY:
        value = router.event_value(event, name)
        found[name] = mask_phone(value) if not show_pii and name in MASKED_KEYS and value else value
    return found


def group_id(label: str) -> str:
    """A short, stable id for a group key (Redis keys and job ids stay small)."""
    return hashlib.sha1(label.encode()).hexdigest()[:16]


def event_entry(event: Mapping, show_pii: bool = False, shared: Collection[str] = ()) -> str:
    """An enriched event as the `:events` list keeps it (`EVENT_FIELDS` of its alert item but
    those `shared` by the group; a failure's are read straight from the event: no alert item
    built per event)."""
    if event.get("kind") == "health" or event.get("kind") in fate_text.KINDS:
        item: Mapping = alert_item(event, show_pii)
    else:
        item = event
    values = []
    for name in EVENT_FIELDS:
        if name == "recipient_id" and item is event:
            value = _recipient(event, show_pii)
        elif name in shared:
            value = None  # the group's labels hold it
        else:
            value = item.get(name)
        values.append(bounds.value(value, SAMPLE_TEXT_MAX, depth=2))
    while values and values[-1] is None:
        values.pop()
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def alert_item(event: Mapping, show_pii: bool = False) -> dict:
    """One entry of a notification's `alerts[]`, from an enriched event."""
    if event.get("kind") == "health":
        return _health_item(event)
    if event.get("kind") in fate_text.KINDS:
        return fate_text.item(event)  # a failing tracker, messages stuck in sent
    entry = event.get("catalog") or {}
    item = {
        "event_id": event.get("event_id"),
        "api": event.get("api"),
        "code": event.get("code"),
        "title": entry.get("title"),
        "category": entry.get("category"),
        "severity": entry.get("severity"),
        "retry": entry.get("retry"),
        "explanation": entry.get("explanation"),
        "action": entry.get("action"),
        "known": entry.get("known"),
        "reported": bounds.value(entry.get("reported"), SAMPLE_TEXT_MAX, depth=2),
        "status": event.get("status"),
        "message_id": event.get("message_id"),
        "recipient_id": _recipient(event, show_pii),
        "phone_number_id": event.get("phone_number_id"),
        "waba_id": event.get("waba_id"),
        "biz_opaque_callback_data": event.get("biz_opaque_callback_data"),
        "timestamp": event.get("timestamp"),
    }
    if event.get("retry_exhausted"):
        item["retry_exhausted"] = True
        item["attempts"] = event.get("retry_attempts") or event.get("attempt")
        item["retry_reason"] = event.get("retry_reason")
    if event.get("health"):
        item["health"] = event["health"]  # the known state its code points at (workers.health)
    return item


def _recipient(event: Mapping, show_pii: bool) -> str | None:
    recipient = event.get("recipient_id")
    return recipient if show_pii or not recipient else mask_phone(recipient)


def _health_item(event: Mapping) -> dict:
    """`alert_item` of an account, template or number health event (docs/alerts.md)."""
    entry = event.get("catalog") or {}
    item = {
        "event_id": event.get("event_id"),
        "kind": "health",
        "api": "cloud",
        "field": event.get("field"),
        "event": event.get("event"),
        "entity": event.get("entity"),
        "previous": event.get("previous") or {},
        "current": event.get("current") or {},
        "ends": health_text.date(event.get("ends")),
        "title": entry.get("title"),
        "category": entry.get("category"),
        "severity": entry.get("severity"),
        "effect": entry.get("effect"),
        "explanation": entry.get("explanation"),
        "action": entry.get("action"),
        "known": entry.get("known"),
        "source": (entry.get("source") or [None])[0],
        "details": bounds.value(event.get("details"), SAMPLE_TEXT_MAX, depth=3),
        "code": None,
        "waba_id": event.get("waba_id"),
        "timestamp": event.get("timestamp"),
    }
    if event.get("brief"):
        item["brief"] = event["brief"]  # a recovery of a problem never notified (workers.health)
    return item


def _meta(route: Route, retry_exhausted: bool, labels: dict) -> str:
    return json.dumps({
        "route": route.name,
        "receivers": list(route.receivers),
        "group_by": list(route.group_by or DEFAULT_GROUP_BY),
        "group_wait": float(route.group_wait),
        "group_interval": float(route.group_interval),
        "repeat_interval": float(route.repeat_interval),
        "retry_exhausted": retry_exhausted,
        "labels": labels,
    })  # fmt: skip


def _seen(event: Mapping, now: float) -> float:
    return float(event.get("received_at") or event.get("timestamp") or now)


_last_recover = 0.0


def submit(
    connection: redis.Redis, events: list[dict], route: Route, settings: Settings | None = None
) -> None:
    """Add enriched `events` to their alert groups under `route`, or count them as silenced."""
    with connection.pipeline(transaction=False) as pipe:
        finish = stage_submit(pipe, connection, events, route, settings)
        finish(pipe.execute())  # also when every event was silenced: their ledger entries


def stage_submit(
    pipe: redis.client.Pipeline,
    connection: redis.Redis,
    events: list[dict],
    route: Route,
    settings: Settings | None = None,
) -> Callable[[list], None]:
    """`submit`'s writes, queued into `pipe` (which may be the caller's MULTI); returns what to
    call with the replies of `pipe.execute()` to schedule the flushes."""
    if not events:
        return lambda replies: None
    now = round(time.time(), 3)
    settings = settings or current()
    keep, silenced = silences.split(connection, events, settings)
    show_pii = settings.log_pii
    groups: dict[str, list[dict]] = {}
    for event in keep:
        groups.setdefault(group_label(event, route), []).append(event)  # the whole key
    script = connection.register_script(_SUBMIT)
    if silenced:
        ids = [event["event_id"] for found in silenced.values() for event in found]
        ledger.record(pipe, "silenced", ids)
        silences.count_silenced(pipe, silenced)
    order = []
    for whole_label, found in groups.items():
        gid = group_id(whole_label)
        label = group_label(found[0], route, show_pii)
        seen = [_seen(event, now) for event in found]
        samples = [json.dumps(alert_item(event, show_pii), ensure_ascii=False)
                   for event in found[-SAMPLE_SIZE:]]  # fmt: skip
        # fields every event of the group has alike: kept once, in the labels (`events`)
        shared = {name for name in route.group_by or DEFAULT_GROUP_BY
                  if name in ("code", "phone_number_id")}  # fmt: skip
        exhausted = bool(found[0].get("retry_exhausted"))
        meta = _meta(route, exhausted, group_labels(found[0], route, show_pii))
        args = [
            gid, now, min(seen), max(seen), meta,
            route.group_wait, route.group_interval,
            label, SAMPLE_SIZE, len(samples), settings.group_events, *samples,
            *(part for event in found
              for part in (event["event_id"], event_entry(event, show_pii, shared))),
        ]  # fmt: skip
        script(keys=[*_keys(gid), events_key(gid)], args=args, client=pipe)
        order.append(gid)
    end = len(pipe)

    def finish(replies: list) -> None:
        global _last_recover
        results = replies[end - len(order) : end] if order else []
        queue = get_queue(connection, ALERTS)
        for gid, (added, job, due) in zip(order, results, strict=True):
            EVENTS_GROUPED.labels(route.name).inc(int(added))
            if job:
                _schedule(queue, gid, job.decode(), float(due), now)
        if now - _last_recover > RECOVER_GRACE_SECONDS / 2:
            _last_recover = now
            recover(connection)

    return finish


def _schedule(queue: rq.Queue, gid: str, job_id: str, due: float, now: float) -> None:
    """Queue flush `job_id` for `due` (at once when it is due now)."""
    # the Lua side keeps milliseconds: `now` may round up
    enqueue_once(queue, FLUSH_JOB, gid, job_id, None if due <= now + 0.002 else due)


def flush_group(gid: str, job_id: str | None = None, connection: redis.Redis | None = None) -> str:
    """RQ job: turn a group's gathered events into a notification, if it is this job's turn."""
    connection = connection or job_connection()
    running = current_job_id()
    job_id = job_id or running
    lock = Lock(connection, "flush:" + gid, owner=running)
    if not lock.acquire():
        FLUSHES.labels("locked").inc()
        _pass_turn(connection, gid, job_id)
        return "locked"
    try:
        now = time.time()
        nid = new_id()
        resolve = current().group_resolve
        keys = [*_keys(gid), notifications.record_key(nid), notifications.events_key(nid),
                notifications.OUTBOX, alertmanager.RECORDS, alertmanager.RESOLVED,
                *_more_keys(gid)]  # fmt: skip
        opening = notifications.opening(nid, now)
        args = [gid, now, job_id or "", nid, resolve, EARLY_TOLERANCE_SECONDS,
                *(part for pair in opening.items() for part in pair)]  # fmt: skip
        reply = connection.register_script(_FLUSH)(keys=keys, args=args)
        result, next_job, due = reply[0].decode(), reply[1], reply[2]
        if len(reply) > 3:  # RQ runs this job again after it died mid-way: finish its work
            nid = reply[3].decode()
            result = "resumed"
        FLUSHES.labels(result).inc()
        if next_job:
            _schedule(get_queue(connection, ALERTS), gid, next_job.decode(), float(due), now)
        if result == "closed":
            alertmanager.resolve(connection, gid)
        if result in ("firing", "update", "repeat", "resumed"):
            # The first try runs here, not in a job of its own: one fork less per notification.
            notifications.deliver(nid, notifications.job_id(nid, 1), connection)
        return result
    finally:
        lock.release()


_CLOSE = (
    notifications.RECORD_LUA
    + """
local g, p, s, z, n, ne, outbox = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
if redis.call('EXISTS', g) == 0 then return 0 end
local pending = redis.call('SCARD', p)
if pending > 0 then redis.call('RENAME', p, ne) end
redis.call('SADD', ne, ARGV[3])
local sample = redis.call('LRANGE', s, 0, tonumber(ARGV[6]) - 2)
table.insert(sample, 1, ARGV[4])
local count = tonumber(redis.call('HGET', g, 'count') or '0') + 1
open_record(n, outbox, ARGV[5], ARGV[2], {'gid', ARGV[1],
  'group_key', redis.call('HGET', g, 'group_key'),
  'status', 'resolved', 'count', count, 'events', pending + 1,
  'first_seen', redis.call('HGET', g, 'first_seen'), 'last_seen', ARGV[2],
  'sample', cjson.encode(sample), 'meta', redis.call('HGET', g, 'meta'),
  'later_delivered', redis.call('HGET', g, 'later_delivered') or '0'}, 7, g, KEYS[11])
redis.call('DEL', g, p, s, KEYS[10], KEYS[11])
redis.call('ZREM', z, ARGV[1])
-- an alert kept firing in Alertmanager ends with the group
if redis.call('HEXISTS', KEYS[8], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[9], ARGV[1], ARGV[2])
end
return 1
"""
)


def close(connection: redis.Redis, gid: str, event: Mapping, now: float) -> bool:
    """Close the open group `gid` at once with a `resolved` notification that carries `event`
    (a recovery), and queue its delivery. False when the group was not open."""
    with connection.pipeline(transaction=False) as pipe:
        finish = stage_close(pipe, connection, gid, event, now)
        return finish(pipe.execute())


def stage_close(
    pipe: redis.client.Pipeline, connection: redis.Redis, gid: str, event: Mapping, now: float
) -> Callable[[list], bool]:
    """`close`'s write, queued into `pipe` (which may be the caller's MULTI); returns what to
    call with the replies of `pipe.execute()`: it queues the delivery, True if it closed."""
    nid = new_id()
    item = json.dumps(alert_item(event), ensure_ascii=False)
    opening = notifications.opening(nid, now)
    keys = [*_keys(gid), notifications.record_key(nid), notifications.events_key(nid),
            notifications.OUTBOX, alertmanager.RECORDS, alertmanager.RESOLVED,
            *_more_keys(gid)]  # fmt: skip
    args = [gid, f"{now:.3f}", event["event_id"], item, nid, SAMPLE_SIZE,
            *(part for pair in opening.items() for part in pair)]  # fmt: skip
    connection.register_script(_CLOSE)(keys=keys, args=args, client=pipe)
    at = len(pipe) - 1

    def finish(replies: list) -> bool:
        if not replies[at]:
            return False
        notifications.enqueue(connection, nid, str(opening["job"]), 0.0)
        return True

    return finish


_PASS_TURN = """
if redis.call('HGET', KEYS[1], 'job') ~= ARGV[1] then return false end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local job = 'wastatus-flush-' .. ARGV[2] .. '-' .. string.format('%d', seq)
redis.call('HSET', KEYS[1], 'job', job)
return job
"""


def _pass_turn(connection: redis.Redis, gid: str, job_id: str | None) -> None:
    """The lock is held by another flush of this group (a stale duplicate, say): if this job is
    the one the group waits for, hand its turn to a new job a second later, never drop it."""
    if not job_id:
        return
    job = connection.register_script(_PASS_TURN)(keys=[group_hash(gid)], args=[job_id, gid])
    if job:
        now = time.time()
        _schedule(get_queue(connection, ALERTS), gid, job.decode(), now + 1.0, now)


def recover(connection: redis.Redis, grace: float = RECOVER_GRACE_SECONDS) -> int:
    """Issue again the flushes and deliveries overdue by more than `grace`; returns how many."""
    now = time.time()
    reissued = 0
    queue = get_queue(connection, ALERTS)
    for gid, seq in overdue(connection, GROUPS, now - grace, "flush:%s", PREFIX + "%s"):
        job = f"wastatus-flush-{gid}-{seq}"
        connection.hset(group_hash(gid), "job", job)
        _schedule(queue, gid, job, now, now)
        reissued += 1
    reissued += alertmanager.recover(connection)
    return reissued + notifications.recover(connection, now - grace)


_EVENTS_PAGE = """
local count = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
local start = tonumber(ARGV[1])
if ARGV[2] ~= '' then start = math.max(0, count - tonumber(ARGV[2]) + 1) end
local last = start + tonumber(ARGV[3]) - 1
return {count, redis.call('LLEN', KEYS[2]), start, redis.call('LRANGE', KEYS[2], start, last),
        redis.call('HGET', KEYS[1], 'meta') or '{}'}
"""


def events(
    connection: redis.Redis, gid: str, size: int, start: int = 0, before: int | None = None
) -> dict:
    """A page of an open group's kept events, newest first: `size` of them from position
    `start`, or those numbered below `before` (an event's `seq` numbers it in the group: 1 is
    its first, `total` its latest), read at once with the counts they are numbered by.

    `total` is how many events the group has had, `kept` how many the list still holds
    (WASTATUS_GROUP_EVENTS); the events beyond are not kept."""
    args = [max(0, start), "" if before is None else max(0, before), max(1, size)]
    total, kept, start, raws, meta = connection.register_script(_EVENTS_PAGE)(
        keys=[group_hash(gid), events_key(gid)], args=args
    )
    labels = json.loads(meta).get("labels") or {}
    found = []
    for position, raw in enumerate(raws):
        values = json.loads(raw)
        entry = dict.fromkeys(EVENT_FIELDS) | dict(zip(EVENT_FIELDS, values, strict=False))
        for name in ("code", "phone_number_id"):
            if entry[name] is None and labels.get(name) is not None:
                entry[name] = labels[name]  # shared by the group, kept in its labels
        entry["seq"] = int(total) - int(start) - position
        found.append(entry)
    return {"total": int(total), "kept": int(kept), "start": int(start), "events": found}


def open_group_count(connection: redis.Redis) -> int:
    """How many alert groups are open, for /metrics: one EXISTS per thousand groups, where
    `open_groups` reads every group whole."""
    keys = [group_hash(raw.decode()) for raw in connection.zrange(GROUPS, 0, -1)]
    return sum(connection.exists(*keys[i : i + 1000]) for i in range(0, len(keys), 1000))


def open_groups(connection: redis.Redis) -> list[dict]:
    """The open alert groups, soonest flush first, for `wastatus status`."""
    gids = [raw.decode() for raw in connection.zrange(GROUPS, 0, -1)]
    if not gids:
        return []
    with connection.pipeline(transaction=False) as pipe:
        for gid in gids:
            pipe.hgetall(group_hash(gid))
            pipe.scard(group_hash(gid) + ":pending")
        replies = pipe.execute()
    found = []
    for gid, raw, pending in zip(gids, replies[::2], replies[1::2], strict=True):
        state = decode_hash(raw)
        if not state:
            continue
        meta = json.loads(state.get("meta") or "{}")
        receivers = meta.get("receivers") or []
        found.append({
            "group_key": state.get("group_key"),
            "id": gid,
            "route": meta.get("route"),
            "receiver": ",".join(receivers) if receivers else "(default)",
            "count": int(state.get("count", 0)),
            "pending": int(pending),
            "first_seen": notifications.iso(state.get("first_seen")),
            "last_seen": notifications.iso(state.get("last_seen")),
            "last_notified": notifications.iso(state.get("notified_at")),
            "next_flush": notifications.iso(state.get("due")),
            "retry_exhausted": bool(meta.get("retry_exhausted")),
        })  # fmt: skip
    return found
