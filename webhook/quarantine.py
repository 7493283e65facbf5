"""Authenticated webhooks that failed validation, kept whole in a Redis stream for replay.

Such a body is answered 200 (Meta would otherwise retry it for days, to the same end) and
kept here with the reasons, so an operator can fix wastatus or the data and replay it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from webhook.payload import read_body
from workers import intake

STREAM = "wastatus:quarantine"


@dataclass(frozen=True)
class Quarantined:
    id: str
    received_at: float
    auth: str
    problems: list[str]
    body: bytes

    def summary(self) -> dict:
        return {
            "id": self.id,
            "received_at": self.received_at,
            "auth": self.auth,
            "problems": self.problems,
            "size": len(self.body),
        }

    def to_dict(self) -> dict:
        return {**self.summary(), "body": self.body.decode("utf-8", "replace")}


def put(
    connection: redis.Redis, body: bytes, problems: list[str], auth: str, received_at: float
) -> str:
    """Keep `body` with its problems; returns the entry's id."""
    entry_id = connection.xadd(
        STREAM,
        {
            "body": body,
            "problems": json.dumps(problems),
            "auth": auth,
            "received_at": repr(received_at),
        },
    )
    return entry_id.decode()


def _parse(entry_id: bytes | str, fields: dict) -> Quarantined:
    return Quarantined(
        id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        received_at=float(fields[b"received_at"]),
        auth=fields[b"auth"].decode(),
        problems=json.loads(fields[b"problems"]),
        body=fields[b"body"],
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
    reading = read_body(entry.body, received_at=entry.received_at)
    if reading.problems:
        return ReplayResult(entry.id, False, 0, 0, reading.problems)
    result = intake.store(connection, reading.events, dedup_seconds)
    connection.xdel(STREAM, entry.id)
    return ReplayResult(entry.id, True, result.stored, result.duplicates, [])
