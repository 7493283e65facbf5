"""Dead letters: what wastatus could not finish, kept whole so a person can look and replay.

Kinds (`KINDS`): "alert" (a notification no receiver accepted), "retry" (an event whose resends
ran out) and "event" (a poison event that kept crashing its drain batch). An entry is one JSON
document in the hash `DEAD` plus its id in the sorted set `INDEX` (by creation time), so the
list comes out oldest first and `count` is one ZCARD. `put` only writes, so it also works on a
pipeline and lands atomically with the ledger entry the caller records beside it.

Dead letters are bounded: each `put` also removes the entries older than
`WASTATUS_DEAD_RETENTION` (30 days) and the oldest beyond `WASTATUS_DEAD_MAX` (10,000), and
gives both keys that retention as a TTL; their events keep their "dead" outcome in the ledger.
A document is always stored as valid UTF-8.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

import redis
from prometheus_client import Counter

from workers import bounds, intake, ledger, settings

DEAD = "wastatus:dead"
"""Hash: dead-letter id → JSON {id, kind, item, reason, created_at, replays}."""

INDEX = "wastatus:dead:index"
"""Sorted set of dead-letter ids scored by creation time."""

KINDS = ("alert", "retry", "event")

DEAD_LETTERS = Counter(
    "wastatus_dead_letters",
    "Items put in the dead letter store, by kind.",
    ["kind"],
)
DEAD_LETTERS_REPLAYED = Counter(
    "wastatus_dead_letters_replayed",
    "Dead letters replayed by a person, by kind.",
    ["kind"],
)


_PURGE = """
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 1000)
local over = redis.call('ZCARD', KEYS[2]) - #old - tonumber(ARGV[2])
if over > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], #old, #old + math.min(over, 1000) - 1)) do
    old[#old + 1] = id
  end
end
for i = 1, #old, 500 do
  local part = {unpack(old, i, math.min(i + 499, #old))}
  redis.call('HDEL', KEYS[1], unpack(part))
  redis.call('ZREM', KEYS[2], unpack(part))
end
return #old
"""


class UnknownDeadLetter(KeyError):
    """No dead letter has this id (never put, or already replayed)."""


@dataclass(frozen=True)
class DeadLetter:
    id: str
    kind: str
    item: dict
    reason: str
    created_at: float

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "reason": self.reason,
            "created_at": self.created_at,
            "item": self.item,
        }


def new_id(now: float | None = None) -> str:
    """A sortable, unique id: creation time in milliseconds plus random hex."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{millis:013d}-{secrets.token_hex(4)}"


def encoded(document: dict) -> bytes:
    """`document` as UTF-8 JSON, whatever strings it holds: a dead letter that cannot be
    encoded would make burying fail, and the burial be tried again forever."""
    try:
        return json.dumps(document, ensure_ascii=False).encode()
    except (ValueError, RecursionError):  # a lone surrogate is a UnicodeEncodeError
        return json.dumps(bounds.clean(document), ensure_ascii=False, default=str).encode()


def put(connection: redis.Redis, kind: str, item: dict, reason: str) -> str:
    """Keep `item` as a dead letter of `kind` and return its id; `connection` may be a pipeline.

    Expired and surplus dead letters are removed in the same call (`_PURGE`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown dead-letter kind {kind!r}; expected one of {KINDS}")
    now = time.time()
    dead_id = new_id(now)
    document = {"id": dead_id, "kind": kind, "item": item, "reason": reason, "created_at": now}
    current = settings.current()
    purge = connection.register_script(_PURGE)
    purge(keys=[DEAD, INDEX], args=[now - current.dead_retention, current.dead_max - 1],
          client=connection)  # fmt: skip
    connection.hset(DEAD, dead_id, encoded(document))
    connection.zadd(INDEX, {dead_id: now})
    # With no new dead letter for a whole retention, every one left is past it.
    connection.expire(DEAD, int(current.dead_retention) + 1)
    connection.expire(INDEX, int(current.dead_retention) + 1)
    DEAD_LETTERS.labels(kind).inc()
    return dead_id


def _parse(raw: bytes | str) -> DeadLetter:
    data = json.loads(raw)
    return DeadLetter(data["id"], data["kind"], data["item"], data["reason"], data["created_at"])


def get(connection: redis.Redis, dead_id: str) -> DeadLetter | None:
    """The dead letter `dead_id`, or None."""
    raw = connection.hget(DEAD, dead_id)
    return None if raw is None else _parse(raw)


def entries(connection: redis.Redis, kind: str | None = None) -> list[DeadLetter]:
    """Every dead letter (or those of `kind`), oldest first."""
    ids = connection.zrange(INDEX, 0, -1)
    if not ids:
        return []
    found = [_parse(raw) for raw in connection.hmget(DEAD, ids) if raw is not None]
    return [entry for entry in found if kind is None or entry.kind == kind]


def count(connection: redis.Redis) -> int:
    """How many dead letters wait for a person."""
    return int(connection.zcard(INDEX))


def _remove(pipe: redis.Redis, dead_id: str) -> None:
    pipe.hdel(DEAD, dead_id)
    pipe.zrem(INDEX, dead_id)


def replay(connection: redis.Redis, dead_id: str) -> dict:
    """Send a dead letter around again and remove it; returns what was done.

    An alert goes back to its receivers as a new notification (same event ids); a retry or a
    poison event goes back into the inbox, so the drain job routes it again from the start.
    """
    entry = get(connection, dead_id)
    if entry is None:
        raise UnknownDeadLetter(dead_id)
    if entry.kind == "alert":
        from workers import notifications  # import here: notifications imports this module

        done = {"requeued": "notification", "id": notifications.redeliver(connection, entry.item)}
        with connection.pipeline() as pipe:
            _remove(pipe, dead_id)
            pipe.execute()
    else:
        event = entry.item.get("event", entry.item)
        with connection.pipeline() as pipe:
            # The event goes round again from the start, so its first outcome is forgotten in
            # the same transaction: it will end in one outcome again, not in a conflict.
            ledger.reopen(pipe, [event.get("event_id")])
            pipe.lpush(intake.INBOX, encoded(event))
            _remove(pipe, dead_id)
            pipe.execute()
        intake.schedule_drain(connection)
        done = {"requeued": "inbox", "event_id": event.get("event_id")}
    DEAD_LETTERS_REPLAYED.labels(entry.kind).inc()
    return {"id": dead_id, "kind": entry.kind, **done}
