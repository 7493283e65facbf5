"""Stores failed events for the workers: deduplicated, atomically, in one round trip.

The webhook calls `store` before it answers Meta. One Lua script marks each event as seen
and pushes the new ones onto the inbox list; two racing deliveries of one failure therefore
store one event. Seen marks are members of one set per time bucket (a day, for the default
8-day window), the event id in 12 bytes (96 bits: no two failures within a window collide in
practice): about 70 bytes a failure, where a key of its own with a TTL took about 100. A mark
lives between one window and one window plus a bucket.
A drain job is enqueued at most once per `DRAIN_FLAG_SECONDS`, so a burst of requests costs
one RQ enqueue, not one per request.
"""

from __future__ import annotations

import hashlib
import threading
import time
import weakref
from dataclasses import dataclass
from importlib.resources import files

import redis

from workers import fastjson
from workers.bounds import encoded
from workers.inbox.held_script import HeldScript
from workers.jobs import FAILURE_TTL
from workers.outcomes import ledger
from workers.outcomes.deadletters import Removal
from workers.queues import EVENTS, get_queue

INBOX = "wastatus:inbox"
"""List of event JSON documents waiting for a drain job (LPUSH in, consumed from the right)."""

SEEN_PREFIX = "wastatus:seen:"
"""`SEEN_PREFIX + <bucket seconds>:<bucket number>`: set of the ids (12 bytes) of the events
taken in that bucket, expiring a window and a bucket after its last write. Versions before
kept `SEEN_PREFIX + event_id` keys; those are still honoured until they expire."""

PROCESSING_PATTERN = "wastatus:inbox:processing:*"
"""Lists of events a drain job has claimed and not yet finished (one per job)."""

DRAIN_FLAG = "wastatus:inbox:drain-scheduled"
"""Set while a drain job is queued; a drain job deletes it when it starts."""

DRAIN_FLAG_SECONDS = 5
DEFAULT_DEDUP_SECONDS = 8 * 86400
DRAIN_JOB = "workers.drain.drain_inbox"

_STORE_SCRIPT = files("workers.inbox").joinpath("intake_store.lua").read_text()
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
    size, buckets = _buckets(dedup_seconds, time.time())
    ids = [event["event_id"] for event in events]
    keys = [INBOX, DRAIN_FLAG, *buckets, *(SEEN_PREFIX + event_id for event_id in ids)]
    packed = [_packed(event_id) for event_id in ids]
    documents = [fastjson.dumps(event) for event in events]
    args = [int(dedup_seconds + size), DRAIN_FLAG_SECONDS, len(buckets), *packed, *documents]
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


def _buckets(dedup_seconds: float, now: float) -> tuple[int, list[str]]:
    """The bucket size and the seen buckets a window covers, the current one first."""
    size = max(1, min(86400, int(dedup_seconds)))
    current = int(now // size)
    count = -(-int(dedup_seconds) // size) + 1
    return size, [f"{SEEN_PREFIX}{size}:{current - back}" for back in range(count)]


def _packed(event_id: str) -> bytes:
    """The id as stored in a seen bucket: 12 bytes of the usual 32 hex digits."""
    try:
        return bytes.fromhex(event_id)[:12]
    except ValueError:  # an id from elsewhere (tests, older tools): kept as it is
        return event_id.encode()


def seen(connection: redis.Redis, event_id: str, dedup_seconds: float = DEFAULT_DEDUP_SECONDS,
         now: float | None = None) -> bool:  # fmt: skip
    """True when `event_id` was taken within the dedup window; raises RedisError."""
    _, buckets = _buckets(dedup_seconds, time.time() if now is None else now)
    with connection.pipeline(transaction=False) as pipe:
        pipe.exists(SEEN_PREFIX + event_id)
        for bucket in buckets:
            pipe.sismember(bucket, _packed(event_id))
        return any(pipe.execute())


def oldest_age(connection: redis.Redis, now: float | None = None) -> float:
    """Seconds the oldest event in the inbox has waited (0 when it is empty); raises RedisError.

    The drain takes events from the right end, so that one is the oldest: its age growing
    while events keep coming is the sign of a stuck drain, however short the inbox."""
    raw = connection.lindex(INBOX, -1)
    if raw is None:
        return 0.0
    try:
        received = fastjson.loads(raw).get("received_at")
    except (ValueError, RecursionError, AttributeError):
        return 0.0
    if not isinstance(received, (int, float)) or isinstance(received, bool):
        return 0.0
    return max(0.0, (time.time() if now is None else now) - received)


def schedule_drain(connection: redis.Redis) -> None:
    """Queue a drain job; enqueued by dotted path so the web side need not import jobs."""
    get_queue(connection, EVENTS).enqueue(DRAIN_JOB, result_ttl=0, failure_ttl=FAILURE_TTL)


def requeue(connection: redis.Redis, event: dict, also: Removal | None = None) -> None:
    """Put a dead-lettered event back into the inbox, so the drain job routes it from the start.

    It goes round again, so its first outcome is forgotten in the same transaction (and `also`
    adds the dead letter's removal to it): it will end in one outcome again, not in a conflict.
    """
    with connection.pipeline() as pipe:
        ledger.reopen(pipe, [event.get("event_id")])
        pipe.lpush(INBOX, encoded(event))
        if also is not None:
            also(pipe)
        pipe.execute()
    schedule_drain(connection)
