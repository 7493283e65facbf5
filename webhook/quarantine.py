"""Authenticated webhooks that failed validation, kept whole in a Redis stream for replay.

Such a body is answered 200 (Meta would otherwise retry it for days, to the same end) and
kept here with the reasons, so an operator can fix wastatus or the data and replay it.

The stream is bounded: at most `WASTATUS_QUARANTINE_MAX` entries and
`WASTATUS_QUARANTINE_BYTES` of bodies (the oldest are dropped first, counted in
`wastatus_quarantine_dropped_total`), each body cut to `WASTATUS_QUARANTINE_BODY_MAX` (a cut
body is kept for reading, not for replay). Whoever holds a valid signature can send invalid
bodies; without the bounds each would be kept forever.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from webhook import counters
from webhook.payload import read_body
from workers import settings
from workers.inbox import intake

STREAM = "wastatus:quarantine"

BYTES = "wastatus:quarantine:bytes"
"""The bytes of the bodies kept in `STREAM`, kept by the scripts that add and remove them."""

_PUT = """
local id = redis.call('XADD', KEYS[1], '*', 'body', ARGV[1], 'problems', ARGV[2],
  'auth', ARGV[3], 'received_at', ARGV[4], 'size', ARGV[5])
local total = redis.call('INCRBY', KEYS[2], #ARGV[1])
local most, budget, dropped = tonumber(ARGV[6]), tonumber(ARGV[7]), 0
while redis.call('XLEN', KEYS[1]) > most or total > budget do
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  if oldest[1] == id then break end
  local fields, size = oldest[2], 0
  for i = 1, #fields, 2 do
    if fields[i] == 'body' then size = #fields[i + 1] end
  end
  redis.call('XDEL', KEYS[1], oldest[1])
  total = redis.call('DECRBY', KEYS[2], size)
  dropped = dropped + 1
end
return {id, dropped}
"""

_REMOVE = """
if redis.call('XDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('DECRBY', KEYS[2], ARGV[2])
end
if redis.call('XLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[2]) end
"""


@dataclass(frozen=True)
class Quarantined:
    id: str
    received_at: float
    auth: str
    problems: list[str]
    body: bytes
    size: int | None = None
    """The body's size as received, when more than the kept `body` (it was cut)."""

    @property
    def cut(self) -> bool:
        return self.size is not None and self.size > len(self.body)

    def summary(self) -> dict:
        return {
            "id": self.id,
            "received_at": self.received_at,
            "auth": self.auth,
            "problems": self.problems,
            "size": self.size if self.cut else len(self.body),
            "cut": self.cut,
        }

    def to_dict(self) -> dict:
        return {**self.summary(), "body": self.body.decode("utf-8", "replace")}


def put(
    connection: redis.Redis, body: bytes, problems: list[str], auth: str, received_at: float
) -> str:
    """Keep `body` (cut to the per-entry limit) with its problems; drop the oldest entries
    beyond the bounds; returns the entry's id."""
    current = settings.current()
    kept = body[: min(current.quarantine_body_max, current.quarantine_bytes)]
    args = [kept, json.dumps(problems), auth, repr(received_at), len(body),
            current.quarantine_max, current.quarantine_bytes]  # fmt: skip
    entry_id, dropped = connection.register_script(_PUT)(keys=[STREAM, BYTES], args=args)
    if dropped:
        counters.QUARANTINE_DROPPED.inc(int(dropped))
    return entry_id.decode()


def remove(connection: redis.Redis, entry: Quarantined) -> None:
    """Take `entry` out of the quarantine (and its bytes out of the total)."""
    connection.register_script(_REMOVE)(keys=[STREAM, BYTES], args=[entry.id, len(entry.body)])


def held_bytes(connection: redis.Redis) -> int:
    """Bytes of quarantined bodies kept now."""
    return int(connection.get(BYTES) or 0)


def _parse(entry_id: bytes | str, fields: dict) -> Quarantined:
    return Quarantined(
        id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        received_at=float(fields[b"received_at"]),
        auth=fields[b"auth"].decode(),
        problems=json.loads(fields[b"problems"]),
        body=fields[b"body"],
        size=int(fields[b"size"]) if b"size" in fields else None,
    )


def entries(connection: redis.Redis, count: int | None = None) -> list[Quarantined]:
    """The quarantined bodies, oldest first."""
    return [_parse(i, f) for i, f in connection.xrange(STREAM, count=count)]


def get(connection: redis.Redis, entry_id: str) -> Quarantined | None:
    found = connection.xrange(STREAM, min=entry_id, max=entry_id)
    return _parse(*found[0]) if found else None


def size(connection: redis.Redis) -> int:
    return connection.xlen(STREAM)


@dataclass(frozen=True)
class ReplayResult:
    id: str
    replayed: bool
    stored: int
    duplicates: int
    problems: list[str]

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def replay(
    connection: redis.Redis,
    entry: Quarantined,
    dedup_seconds: int = intake.DEFAULT_DEDUP_SECONDS,
) -> ReplayResult:
    """Read the body again; if it is valid now, store its events and drop the entry."""
    if entry.cut:
        problem = f"body: kept cut to {len(entry.body)} of {entry.size} bytes; not replayable"
        return ReplayResult(entry.id, False, 0, 0, [problem])
    reading = read_body(entry.body, received_at=entry.received_at)
    if reading.problems:
        return ReplayResult(entry.id, False, 0, 0, reading.problems)
    result = intake.store(connection, reading.events, dedup_seconds)
    remove(connection, entry)
    return ReplayResult(entry.id, True, result.stored, result.duplicates, [])
