"""Out-of-order safety: a failure alert never claims more than Meta said.

Meta does not promise the order of statuses: a `delivered` or `read` may arrive after the
`failed` that was alerted. The drain job `remember`s which alert group each failed message
went to, for everyone (message tracking or not), in a record small enough to keep for every
alerted failure (`workers.fates.shards`): the field is 6 bytes of the message id's digest,
the value the day's number of its group (`GROUPS_SUFFIX` maps numbers to group ids), in one
of `SHARDS` small hashes per UTC day (`wastatus:fates:alerted:<day>:<shard>`, the shard from
another 2 bytes of the digest), each held to `SHARD_MAX` entries so that Redis keeps it in its
compact encoding; kept `ALERTED_DAYS`. About 11 to 13 bytes an alerted failure
(`bench/fates_memory.py`); past `SHARDS` × `SHARD_MAX` failures in a day the rest are not
remembered (their later news is not linked: a group then says less, never more).

Each web process's background flush (`webhook/funnel.py`) hands over the wamids that reported
`delivered`, `read` or `played` since the last flush: `look_up` finds, in one read-only script
pipelined with the funnel write, those alerted as failed; `mark` then counts each once in its
group (`later_delivered`), in a second script whose every key (the group's hash and its set of
messages already counted) is declared in KEYS. The set makes the count once per message even
when two web processes flush the same wamid at once. The group's next notification says so:
"1 of 12 later reported delivered or read".
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis

from workers.alerting import groups
from workers.fates.shards import DAY, SHARD_MAX, digest, field, shard

ALERTED_PREFIX = "wastatus:fates:alerted:"
ALERTED_DAYS = 3
"""Days a failed message's alert group is remembered: later news after that is not linked."""

SHARDS = 256
"""Shards a day (`workers.fates.shards`: each up to `SHARD_MAX` entries), so that a day
remembers up to 131,072 alerted failures at about 11 bytes each (1.4 MB)."""

GROUPS_SUFFIX = ":groups"
"""`ALERTED_PREFIX + <day> + GROUPS_SUFFIX`: hash of that day's group numbers, both ways
(gid → number, number → gid, `next` → the last number given)."""

LATER_SUFFIX = ":later"
"""`groups.group_hash(gid) + LATER_SUFFIX`: the messages already counted as later delivered."""

LATER_KEEP = ALERTED_DAYS * DAY + 7 * DAY
"""Seconds the set of counted messages outlives its last addition (a group lives that long)."""

_REMEMBER = """
local cap, ttl, numbers = tonumber(ARGV[1]), ARGV[2], KEYS[1]
for i = 3, #ARGV, 3 do
  local key, field, gid = KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2]
  if redis.call('HLEN', key) < cap or redis.call('HEXISTS', key, field) == 1 then
    local n = redis.call('HGET', numbers, gid)
    if not n then
      n = redis.call('HINCRBY', numbers, 'next', 1)
      redis.call('HSET', numbers, gid, n, n, gid)
    end
    redis.call('HSET', key, field, n)
  end
end
for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ttl) end
return 1
"""

_LOOK_UP = """
local days, found = tonumber(ARGV[1]), {}
for i = 2, #ARGV, 2 do
  local base = tonumber(ARGV[i + 1])
  for d = 0, days - 1 do
    local n = redis.call('HGET', KEYS[base + d], ARGV[i])
    if n then
      local gid = redis.call('HGET', KEYS[d + 1], n)
      if gid then
        found[#found + 1] = i / 2
        found[#found + 1] = gid
      end
      break
    end
  end
end
return found
"""

_MARK = """
local keep, marked = ARGV[1], 0
for i = 2, #ARGV do
  local g, later = KEYS[2 * i - 3], KEYS[2 * i - 2]
  if redis.call('EXISTS', g) == 1 and redis.call('SADD', later, ARGV[i]) == 1 then
    redis.call('HINCRBY', g, 'later_delivered', 1)
    redis.call('EXPIRE', later, keep)
    marked = marked + 1
  end
end
return marked
"""


def _days(now: float) -> list[int]:
    today = int(now // DAY)
    return [today - back for back in range(ALERTED_DAYS)]


def _keys(found: bytes, now: float) -> list[str]:
    """The shards of a digest, today's first."""
    at = shard(found, SHARDS)
    return [f"{ALERTED_PREFIX}{day}:{at}" for day in _days(now)]


def remember(pipe: redis.client.Pipeline, alerted: Iterable[tuple[str, str]], now: float) -> None:
    """Queue on `pipe` the group of each (wamid, gid) alerted as failed."""
    keys: dict[str, int] = {f"{ALERTED_PREFIX}{_days(now)[0]}{GROUPS_SUFFIX}": 1}
    args: list = [SHARD_MAX, ALERTED_DAYS * DAY]
    for wamid, gid in alerted:
        if not isinstance(wamid, str) or not wamid:
            continue
        found = digest(wamid)
        key = _keys(found, now)[0]
        index = keys.setdefault(key, len(keys) + 1)
        args += [index, field(found), gid]
    if len(keys) > 1:
        pipe.register_script(_REMEMBER)(keys=list(keys), args=args, client=pipe)


LOOK_UP_CHUNK = 2000
"""Wamids one look-up script reads: after an outage a flush may hold up to 100,000, and one
script that long would hold Redis up for tens of milliseconds."""


@dataclass(frozen=True)
class Lookup:
    """The digests `look_up` queued, in the order of its script calls' replies."""

    chunks: list[list[bytes]]


def look_up(
    pipe: redis.client.Pipeline, wamids: Iterable[str], now: float | None = None
) -> Lookup | None:
    """Queue on `pipe` reads of which of `wamids` (delivered, read or played lately) were
    alerted as failed (one script call per `LOOK_UP_CHUNK`); None when there is nothing to
    read. Every key read is declared."""
    now = time.time() if now is None else now
    digests = list({digest(wamid) for wamid in wamids if isinstance(wamid, str)})
    if not digests:
        return None
    chunks = [digests[at : at + LOOK_UP_CHUNK] for at in range(0, len(digests), LOOK_UP_CHUNK)]
    script = pipe.register_script(_LOOK_UP)
    for chunk in chunks:
        keys = {f"{ALERTED_PREFIX}{day}{GROUPS_SUFFIX}": n for n, day in enumerate(_days(now), 1)}
        args: list = [ALERTED_DAYS]
        for found in chunk:
            days = _keys(found, now)
            if days[0] not in keys:
                for key in days:
                    keys[key] = len(keys) + 1
            args += [field(found), keys[days[0]]]
        script(keys=list(keys), args=args, client=pipe)
    return Lookup(chunks)


def mark(connection: redis.Redis, lookup: Lookup, replies: Sequence[list]) -> int:
    """Count, once per message, each message `lookup` found (`replies`: its script calls'
    replies) in its group, if still open; returns how many were counted now."""
    pairs = [(chunk[int(reply[i]) - 1], reply[i + 1].decode())
             for chunk, reply in zip(lookup.chunks, replies, strict=True)
             for i in range(0, len(reply), 2)]  # fmt: skip
    if not pairs:
        return 0
    keys: list[str] = []
    for _member, gid in pairs:
        keys += [groups.group_hash(gid), groups.group_hash(gid) + LATER_SUFFIX]
    args = [LATER_KEEP, *(member for member, _gid in pairs)]
    return int(connection.register_script(_MARK)(keys=keys, args=args))


def later_delivered(connection: redis.Redis, gid: str) -> int:
    """How many messages of group `gid` later reported delivered, read or played."""
    return int(connection.hget(groups.group_hash(gid), "later_delivered") or 0)
