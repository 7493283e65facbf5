"""The notification log: each alert notification, its delivery attempts, and how it ended.

A flush writes a notification record (hash `record_key(nid)`) and moves the group's event ids
into `events_key(nid)`; `deliver` (an RQ job on `wastatus-alerts`) tries the route's receivers
in order: each up to `WASTATUS_ALERT_ATTEMPTS` times with exponential backoff and jitter,
waiting at least what a 429's Retry-After asks (scheduled jobs, never a sleep in the worker),
then the next receiver, finally a dead letter. The ledger is written with the final state,
in one transaction: "alerted" when a receiver accepted the notification, "dead" when none did.

Like groups, a record names the one job allowed to act on it; `recover` re-issues a delivery
that is overdue, so a killed worker or a Redis restart neither loses nor repeats a notification
(a receiver may still see a send twice if a worker dies between its 2xx and our write:
`webhook-id` is the notification id, stable across attempts, for receivers to deduplicate).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from collections.abc import Mapping

import redis

from workers.alerting import alertmanager, receivers
from workers.alerting import text as alert_text
from workers.jobs import (
    Lock,
    current_job_id,
    decode_hash,
    enqueue_once,
    job_connection,
    new_id,
    overdue,
)
from workers.outcomes import deadletters, ledger
from workers.outcomes.deadletters import Removal
from workers.queues import ALERTS, get_queue
from workers.settings import Settings, current

RECORD_PREFIX = "wastatus:alerts:notification:"
GROUP_PREFIX = "wastatus:alerts:group:"
"""`groups.PREFIX`, the group hashes' (this module cannot import `groups`, which imports it)."""
OUTBOX = "wastatus:alerts:outbox"
"""Sorted set of notification ids not yet delivered nor dead, by when their next try is due."""

KEEP_SECONDS = 7 * 86400
"""How long a finished notification record stays readable (the notification log)."""

DELIVER_JOB = "workers.alerting.notifications.deliver"
RETRY_AFTER_MAX = 86400.0
VERSION = 1


NOTIFICATIONS_KEPT = 50
"""How many notification ids a group's index keeps, newest first: at the default repeat
interval (4 h) a week of repeats, more than a group's page needs."""


def index_key(gid: str) -> str:
    """A group's notification ids, newest first (at most `NOTIFICATIONS_KEPT`), written by
    `RECORD_LUA` and deleted with the group: nothing else knows which notifications a group had."""
    return GROUP_PREFIX + gid + ":notifications"


def record_key(nid: str) -> str:
    return RECORD_PREFIX + nid


def events_key(nid: str) -> str:
    return RECORD_PREFIX + nid + ":events"


def job_id(nid: str, seq: int) -> str:
    return f"wastatus-deliver-{nid}-{seq}"


RECORD_LUA = f"""
-- notifications.RECORD_LUA: write a new notification record `n` from what its group knows
-- (`fields`, name/value pairs) and the delivery state `notifications.opening` gives, passed as
-- ARGV[from] to the end, put it in the outbox and, while its group `g` is open, first in the
-- group's index of notifications (`index`, capped).
local function open_record(n, outbox, nid, now, fields, from, g, index)
  for i = from, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', n, unpack(fields))
  redis.call('ZADD', outbox, now, nid)
  if redis.call('EXISTS', g) == 1 then
    redis.call('LPUSH', index, nid)
    redis.call('LTRIM', index, 0, {NOTIFICATIONS_KEPT - 1})
  end
end
"""
"""The one writer of a new record, inside a Lua script: a group's flush and close run it so the
record appears atomically with the group's events moving into it, and `redeliver` runs it for a
replay; so every notification of an open group is in its index."""


def opening(nid: str, now: float) -> dict[str, str | int]:
    """The delivery state every new record starts with, a flush's as a replay's: the first
    receiver's first try, by job `job_id(nid, 1)`, due now (see `RECORD_LUA`)."""
    stamp = f"{now:.3f}"
    return {"receiver_index": 0, "attempt": 1, "seq": 1, "job": job_id(nid, 1), "due": stamp,
            "created_at": stamp, "state": "pending"}  # fmt: skip


def backoff(attempt: int, retry_after: float | None, settings: Settings | None = None) -> float:
    """Seconds before try `attempt + 1`: doubling with equal jitter, at least Retry-After."""
    settings = settings or current()
    base, ceiling = settings.alert_retry_base, settings.alert_retry_max
    delay = min(ceiling, base * 2 ** (attempt - 1))
    delay = delay / 2 + random.uniform(0, delay / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_MAX))
    return delay


def enqueue(connection: redis.Redis, nid: str, job: str, delay: float) -> None:
    """Queue the delivery job `job` for `nid`, now or (whole seconds, rounded up) after `delay`."""
    at = None if delay <= 0 else time.time() + delay
    enqueue_once(get_queue(connection, ALERTS), DELIVER_JOB, nid, job, at)


def iso(timestamp: float | str | None) -> str | None:
    """Unix seconds as ISO-8601 UTC with a Z, as the alert JSON shows times."""
    if timestamp in (None, ""):
        return None
    moment = dt.datetime.fromtimestamp(float(timestamp), dt.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def group_url(settings: Settings, gid: str | None) -> str | None:
    """The group's page in the console, when WASTATUS_PUBLIC_URL says where people reach it
    (built from the setting: workers know no Flask routes)."""
    if not settings.public_url or not gid:
        return None
    return f"{settings.public_url.rstrip('/')}/console/groups/{gid}"


def payload(nid: str, state: Mapping[str, str], receiver: str | None,
            settings: Settings | None = None) -> dict:  # fmt: skip
    """The alert JSON (see docs/alerts.md) of notification `nid` addressed to `receiver`."""
    meta = json.loads(state["meta"])
    sample = json.loads(state.get("sample") or "[]")
    items = [json.loads(item) for item in sample] if isinstance(sample, list) else []
    count = int(state.get("count") or 0)
    alert = {
        "version": VERSION,
        "id": nid,
        "receiver": receiver,
        "route": meta.get("route"),
        "group_key": state.get("group_key"),
        "group_id": state.get("gid"),
        "group_labels": meta.get("labels") or {},
        "status": state.get("status"),
        "retry_exhausted": bool(meta.get("retry_exhausted")),
        "count": count,
        "new": int(state.get("events") or 0),
        "first_seen": iso(state.get("first_seen")),
        "last_seen": iso(state.get("last_seen")),
        "truncated": count > len(items),
        "later_delivered": int(state.get("later_delivered") or 0),
        "alerts": items,
    }
    first = items[0] if items and isinstance(items[0], dict) else {}
    kind = first.get("kind")
    alert["kind"] = kind if kind in ("health", "funnel", "stuck") else "failure"
    if alert["kind"] == "health":  # what the group is about, from its latest event
        keys = ("field", "event", "entity", "previous", "current")
        alert |= {key: first.get(key) for key in keys}
    if state.get("replay_of"):
        alert["replay_of"] = state["replay_of"]
    settings = settings or current()
    url = group_url(settings, state.get("gid"))
    if url:
        alert["url"] = url
    lang = settings.lang
    alert["lang"] = lang
    alert["title"] = alert_text.title(alert, lang)
    return alert


def deliver(nid: str, job: str | None = None, connection: redis.Redis | None = None) -> str:
    """RQ job: one try at delivering notification `nid`; schedules the next try if it fails."""
    connection = connection or job_connection()
    owner = current_job_id()
    job = job or owner
    settings = current()
    lock = Lock(connection, "deliver:" + nid, owner=owner)
    if not lock.acquire():
        return "locked"
    try:
        state = decode_hash(connection.hgetall(record_key(nid)))
        if not state or state.get("state") != "pending":
            connection.zrem(OUTBOX, nid)
            return "done"
        if job is not None and state.get("job") != job:
            return "stale"
        errors = json.loads(state.get("errors") or "[]")
        meta = json.loads(state["meta"])
        try:
            chain = receivers.chain(meta.get("receivers") or (), settings)
        except receivers.ReceiverConfigError as error:
            return _dead(connection, nid, state, [*errors, str(error)])
        names = json.dumps([receiver.name for receiver in chain])
        if state.get("chain") != names:  # what the console shows each receiver's state against
            connection.hset(record_key(nid), "chain", names)
        index, attempt = int(state.get("receiver_index") or 0), int(state.get("attempt") or 1)
        if index >= len(chain):
            return _dead(connection, nid, state, [*errors, "the route has no receiver left"])
        receiver = chain[index]
        done = json.loads(state.get("done") or "[]")
        alert = payload(nid, state, receiver.name, settings)
        result = receivers.send(receiver, alert, nid, done, settings)
        if result.ok:
            if receiver.type == "alertmanager" and alert["status"] != "resolved":
                # kept firing there until the group closes
                alertmanager.track(connection, receiver.urls, alert, state, settings)
            _finish(connection, nid, state, "delivered", receiver.name)
            return "delivered"
        errors.append(f"{receiver.name} try {attempt}: {result.error}")
        if attempt < settings.alert_attempts:
            delay = backoff(attempt, result.retry_after, settings)
            _again(connection, nid, index, attempt + 1, delay, errors, result.done_targets)
            return "retrying"
        if index + 1 < len(chain):
            _again(connection, nid, index + 1, 1, 0.0, errors, ())
            return "fallback"
        return _dead(connection, nid, state, errors)
    finally:
        lock.release()


def _again(connection: redis.Redis, nid: str, index: int, attempt: int, delay: float,
           errors: list[str], done: tuple[int, ...]) -> None:  # fmt: skip
    due = time.time() + delay
    seq = connection.hincrby(record_key(nid), "seq", 1)
    job = job_id(nid, seq)
    with connection.pipeline() as pipe:
        pipe.hset(record_key(nid), mapping={
            "receiver_index": index, "attempt": attempt, "job": job, "due": f"{due:.3f}",
            "errors": json.dumps(errors[-20:], ensure_ascii=False), "done": json.dumps(list(done)),
        })  # fmt: skip
        pipe.zadd(OUTBOX, {nid: due})
        pipe.execute()
    enqueue(connection, nid, job, delay)


def _finish(
    connection: redis.Redis,
    nid: str,
    state: Mapping[str, str],
    outcome: str,
    receiver: str | None,
    dead_item: dict | None = None,
    reason: str = "",
) -> None:
    """Mark `nid` delivered or dead and write its events' ledger outcome, all at once."""
    ids = [raw.decode() for raw in connection.smembers(events_key(nid))]
    ending = {"state": outcome, "finished_at": f"{time.time():.3f}", "delivered_to": receiver or ""}
    if dead_item is not None:  # the last error too, which no retry wrote: why it died
        ending["errors"] = json.dumps(dead_item["errors"], ensure_ascii=False)
    with connection.pipeline() as pipe:
        pipe.hset(record_key(nid), mapping=ending)
        pipe.zrem(OUTBOX, nid)
        pipe.expire(record_key(nid), KEEP_SECONDS)
        # The ids are in the ledger (and in the dead letter) now: kept here too they cost
        # about 85 bytes a failure for a week.
        pipe.delete(events_key(nid))
        if dead_item is not None:
            deadletters.put(pipe, "alert", {**dead_item, "event_ids": ids}, reason)
        ledger.record(pipe, "alerted" if outcome == "delivered" else "dead", ids)
        pipe.execute()


def _dead(connection: redis.Redis, nid: str, state: Mapping[str, str], errors: list[str]) -> str:
    item = {
        "notification_id": nid,
        "alert": payload(nid, state, None),
        # The sample is kept once, as the alert's `alerts`; `redeliver` rebuilds it from there.
        "state": {key: value for key, value in state.items()
                  if key in ("group_key", "status", "count", "events", "first_seen",
                             "last_seen", "meta", "gid")},
        "errors": errors[-20:],
    }  # fmt: skip
    reason = errors[-1] if errors else "no receiver accepted the notification"
    _finish(connection, nid, state, "dead", None, item, reason)
    return "dead"


_REDELIVER = (
    RECORD_LUA
    + """
open_record(KEYS[1], KEYS[2], ARGV[1], ARGV[2], {}, 3, KEYS[3], KEYS[4])
"""
)


def redeliver(connection: redis.Redis, item: Mapping, also: Removal | None = None) -> str:
    """Send a dead-lettered notification again from the first receiver; returns the new id.

    Its events' `dead` outcome is forgotten in the same transaction (and `also` adds the dead
    letter's removal to it), so they end in the outcome of this delivery (alerted, or dead
    again), not in a conflict."""
    nid = new_id()
    now = time.time()
    start = opening(nid, now)
    state = dict(item.get("state") or {})
    if "sample" not in state:  # kept once, in the dead-lettered alert
        alerts = (item.get("alert") or {}).get("alerts") or []
        state["sample"] = json.dumps([json.dumps(entry, ensure_ascii=False) for entry in alerts],
                                     ensure_ascii=False)  # fmt: skip
    fields = {**state, **start, "replay_of": item.get("notification_id") or "unknown"}
    gid = str(state.get("gid") or "")
    with connection.pipeline() as pipe:
        connection.register_script(_REDELIVER)(
            keys=[record_key(nid), OUTBOX, GROUP_PREFIX + gid, index_key(gid)],
            args=[nid, f"{now:.3f}", *(part for pair in fields.items() for part in pair)],
            client=pipe,
        )
        if item.get("event_ids"):
            pipe.sadd(events_key(nid), *item["event_ids"])
            ledger.reopen(pipe, item["event_ids"])
        if also is not None:
            also(pipe)
        pipe.execute()
    enqueue(connection, nid, str(start["job"]), 0.0)
    return nid


def get(connection: redis.Redis, nid: str) -> dict | None:
    """A notification record as stored (state, receiver index, attempt, errors …), or None."""
    state = decode_hash(connection.hgetall(record_key(nid)))
    return state or None


def of_group(connection: redis.Redis, gid: str) -> list[tuple[str, dict | None]]:
    """An open group's notifications, newest first, from its index: (id, record), the record
    None once expired (a finished one is kept `KEEP_SECONDS`)."""
    nids = [raw.decode() for raw in connection.lrange(index_key(gid), 0, -1)]
    with connection.pipeline(transaction=False) as pipe:
        for nid in nids:
            pipe.hgetall(record_key(nid))
        records = pipe.execute() if nids else []
    return [(nid, decode_hash(raw) or None) for nid, raw in zip(nids, records, strict=True)]


def receiver_states(record: Mapping[str, str], names: list[str]) -> list[dict]:
    """Where a record's delivery stands with each receiver of its chain (`names`, in order):
    `failed` (fallen back from, or dead), `delivered`, `trying` (its next try is due at
    `next_try`) or `not tried`; with the tries made and the last error. Tries of an earlier
    receiver are counted from the errors kept (the last 20)."""
    index = int(record.get("receiver_index") or 0)
    attempt = int(record.get("attempt") or 1)
    state = record.get("state") or "pending"
    errors = json.loads(record.get("errors") or "[]")
    found = []
    for position, name in enumerate(names):
        mine = [error for error in errors if error.startswith(f"{name} try ")]
        if position < index or (position == index and state == "dead"):
            shown, tries = "failed", max(len(mine), attempt if position == index else 0)
        elif position == index and state == "delivered":
            shown, tries = "delivered", attempt
        elif position == index:
            shown, tries = "trying", attempt - 1  # `attempt` is the next try's number
        else:
            shown, tries = "not tried", 0
        found.append({
            "receiver": name, "state": shown, "attempts": tries,
            "last_error": mine[-1].partition(": ")[2] if mine else None,
            "next_try": iso(record.get("due")) if shown == "trying" else None,
        })  # fmt: skip
    return found


def recover(connection: redis.Redis, before: float) -> int:
    """Issue again deliveries that were due before `before` and did not run; returns how many."""
    reissued = 0
    for nid, seq in overdue(connection, OUTBOX, before, "deliver:%s", RECORD_PREFIX + "%s"):
        job = job_id(nid, seq)
        connection.hset(record_key(nid), mapping={"job": job, "due": f"{time.time():.3f}"})
        connection.zadd(OUTBOX, {nid: time.time()})
        enqueue(connection, nid, job, 0.0)
        reissued += 1
    return reissued
