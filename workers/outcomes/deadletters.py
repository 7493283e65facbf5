"""Dead letters: what wastatus could not finish, kept whole so a person can look and replay.

Kinds (`KINDS`): "alert" (a notification no receiver accepted), "retry" (an event whose resends
ran out) and "event" (a poison event that kept crashing its drain batch). An entry is one JSON
document in the hash `DEAD` plus its id in the sorted set `INDEX` (by creation time), so the
list comes out oldest first and `count` is one ZCARD. `put` only writes, so it also works on a
pipeline and lands atomically with the ledger entry the caller records beside it.

This is a plain store: it knows no producer. `replay` hands an entry to the replayer its caller
names for the entry's kind (`workers.replay` names one per kind, each in the module that owns
that kind of work).

Dead letters are bounded: each `put` also removes the entries older than
`WASTATUS_DEAD_RETENTION` (30 days) and the oldest beyond `WASTATUS_DEAD_MAX` (10,000), and
gives both keys that retention as a TTL; their events keep their "dead" outcome in the ledger.
A document is always stored as valid UTF-8.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import redis
from prometheus_client import Counter

from workers import settings
from workers.bounds import encoded
from workers.jobs import new_id

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


Removal = Callable[[redis.client.Pipeline], None]
"""Adds the removal of the dead letter being replayed to a replayer's transaction."""

Replayer = Callable[[redis.Redis, dict, Removal], dict]
"""Sends a dead letter's item around again, removing the dead letter in the same transaction
(`Removal`); returns what it did, for the person who asked."""


def replay(connection: redis.Redis, dead_id: str, replayers: Mapping[str, Replayer]) -> dict:
    """Send a dead letter around again with the replayer of its kind, and remove it."""
    entry = get(connection, dead_id)
    if entry is None:
        raise UnknownDeadLetter(dead_id)
    done = replayers[entry.kind](connection, entry.item, lambda pipe: _remove(pipe, dead_id))
    DEAD_LETTERS_REPLAYED.labels(entry.kind).inc()
    return {"id": dead_id, "kind": entry.kind, **done}
