"""Stores failed events for the workers: deduplicated, atomically, in one round trip.

The webhook calls `store` before it answers Meta. One Lua script marks each event as seen
(SET NX with the dedup window) and pushes the new ones onto the inbox list; two racing
deliveries of one failure therefore store one event. A drain job is enqueued at most once
per `DRAIN_FLAG_SECONDS`, so a burst of requests costs one RQ enqueue, not one per request.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from dataclasses import dataclass
from importlib.resources import files

import redis

from workers import fastjson
from workers.held_script import HeldScript
from workers.queues import EVENTS, get_queue

INBOX = "wastatus:inbox"
"""List of event JSON documents waiting for a drain job (LPUSH in, consumed from the right)."""

SEEN_PREFIX = "wastatus:seen:"
"""`SEEN_PREFIX + event_id`: set when an event was taken, expires after the dedup window."""

PROCESSING_PATTERN = "wastatus:inbox:processing:*"
"""Lists of events a drain job has claimed and not yet finished (one per job)."""

DRAIN_FLAG = "wastatus:inbox:drain-scheduled"
"""Set while a drain job is queued; a drain job deletes it when it starts."""

DRAIN_FLAG_SECONDS = 5
DEFAULT_DEDUP_SECONDS = 8 * 86400
DRAIN_JOB = "workers.drain.drain_inbox"

_STORE_SCRIPT = files("workers").joinpath("intake_store.lua").read_text()
_store_scripts: weakref.WeakKeyDictionary[redis.Redis, HeldScript] = weakref.WeakKeyDictionary()
_store_scripts_lock = threading.Lock()  # granian's threads: one HeldScript per client, not two


@dataclass(frozen=True)
class StoreResult:
    stored: int
    duplicates: int


def event_id(event: dict) -> str:
    """The identity of a failure: the same failure delivered twice has the same id."""
    codes = sorted(str(error.get("code")) for error in event.get("errors", ()))
    if event.get("message_id"):
        parts = [
            event["message_id"],
            event.get("recipient_id") or "",
            event.get("recipient_participant_id") or "",
            event.get("status") or "",
        ]
    else:  # an error not tied to a message: identify it by where and when it happened
        details = [str(error.get("details") or "") for error in event.get("errors", ())]
        parts = [
            event.get("api") or "",
            event.get("phone_number_id") or "",
            str(event.get("timestamp") or ""),
            *details,
        ]
    return hashlib.sha256("\x1f".join([*parts, *codes]).encode()).hexdigest()[:32]


def store(
    connection: redis.Redis, events: list[dict], dedup_seconds: int = DEFAULT_DEDUP_SECONDS
) -> StoreResult:
    """Store the new events among `events` (each with its `event_id`); raises RedisError."""
    if not events:
        return StoreResult(0, 0)
    keys = [INBOX, DRAIN_FLAG, *(SEEN_PREFIX + event["event_id"] for event in events)]
    args = [dedup_seconds, DRAIN_FLAG_SECONDS, *(fastjson.dumps(event) for event in events)]
    script = _store_scripts.get(connection)
    if script is None:  # one per client: it keeps connections of its own for this call
        with _store_scripts_lock:
            script = _store_scripts.get(connection)
            if script is None:
                script = _store_scripts[connection] = HeldScript(connection, _STORE_SCRIPT)
    stored, schedule = script(keys, args)
    if schedule:
        schedule_drain(connection)
    return StoreResult(int(stored), len(events) - int(stored))


def schedule_drain(connection: redis.Redis) -> None:
    """Queue a drain job; enqueued by dotted path so the web side need not import jobs."""
    get_queue(connection, EVENTS).enqueue(DRAIN_JOB, result_ttl=0, failure_ttl=7 * 86400)
