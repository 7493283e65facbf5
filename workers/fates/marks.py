"""Messages counted once without message tracking: marks of the wamids that reported sent or
failed.

A funnel's `messages` are sent + failed - `sent_failed` (`workers.outcomes.funnels`). A message
that reported both (sent then failed, or failed then sent: Meta does not promise the order)
must count once, or a campaign at 23 % real failures reads 19 % and the tracker failure-rate
rule (`workers.fates.rates`) may not fire. With message tracking on, its timeline says so;
without it, each web process's background flush (`webhook/funnel.py`, never the request)
`mark`s the sent and failed statuses the funnel counted: a mark is a digest field
(`workers.fates.shards`) in one of `SHARDS` small hashes a UTC day
(`wastatus:fates:marks:<day>:<shard>`) whose value says what the message reported (1 sent,
2 failed, 3 both and counted). One Lua script checks and sets each mark, so the message whose
second status makes it 3 is counted once in `sent_failed`, even when two web processes flush
its sent and its failed at the same moment; a status Meta delivered again finds its own mark
and counts nothing.

A day's marks are kept until the day ends plus `WASTATUS_FUNNEL_ALERT_WINDOW`: the rule's
window then never holds a sent and a failed of one message whose first mark has expired
(the second arrived within the window of the first), and the day's funnel (`wastatus funnel
--since 24h` read on the same day) counts the day's pairs once. Bounded by count too: each
shard takes `SHARD_MAX` marks, so a day marks up to `SHARDS` × `SHARD_MAX` (1,048,576)
messages at about 11 bytes each (`bench/fates_memory.py`); past it a message is not marked
and, as before, one that reports both counts twice (docs/operations.md, 6b).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis

from workers.fates.shards import DAY, SHARD_MAX, digest, field, shard

PREFIX = "wastatus:fates:marks:"
SHARDS = 2048
"""Shards a day: 2048 × 512 marks (a million messages a day), about 11 MB a day."""

BIT = {"sent": 1, "failed": 2}
"""A mark's value: the bits of what its message reported; 3 is both, counted."""

CHUNK = 2000
"""Statuses one script call marks: a flush after an outage may hold 100,000, and one script
that long would hold Redis up for tens of milliseconds."""

_MARK = """
local days, cap, ttl, counted = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], {}
for i = 4, #ARGV, 3 do
  local base, name, bit = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2])
  local key, have = KEYS[base], 0
  for d = 0, days - 1 do
    local found = redis.call('HGET', KEYS[base + d], name)
    if found then key, have = KEYS[base + d], tonumber(found) break end
  end
  if have == 0 then
    if redis.call('HLEN', key) < cap then redis.call('HSET', key, name, bit) end
  elseif have ~= 3 and have ~= bit then
    redis.call('HSET', key, name, 3)
    counted[#counted + 1] = (i - 1) / 3
  end
end
for i = 1, #KEYS, days do redis.call('EXPIRE', KEYS[i], ttl) end
return counted
"""


@dataclass(frozen=True)
class Marking:
    """The statuses `mark` queued, in the order of its script calls' replies."""

    chunks: list[list[tuple]]


def _days(now: float, window: float) -> list[int]:
    """The days whose marks are still kept, today first."""
    today = int(now // DAY)
    oldest = int((now - window) // DAY)
    return list(range(today, oldest - 1, -1))


def mark(
    pipe: redis.client.Pipeline, ended: Iterable[tuple], window: float, now: float
) -> Marking | None:
    """Queue on `pipe` the marks of `ended`, each (minute, wamid, status, code, phone,
    tracker, category) of a sent or failed status the funnel counted; None when there is
    none. Every key is declared: a status's shard on each day still kept, today's first."""
    chosen = [item for item in ended if item[2] in BIT and isinstance(item[1], str)]
    if not chosen:
        return None
    days = _days(now, window)
    # relative to the web process's clock, which named the day, not to Redis' clock
    ttl = max(1, math.ceil((days[0] + 1) * DAY + window - now))
    script = pipe.register_script(_MARK)
    chunks = [chosen[at : at + CHUNK] for at in range(0, len(chosen), CHUNK)]
    for chunk in chunks:
        keys: dict[str, int] = {}
        args: list = [len(days), SHARD_MAX, ttl]
        for item in chunk:
            found = digest(item[1])
            at = shard(found, SHARDS)
            first = f"{PREFIX}{days[0]}:{at}"
            if first not in keys:
                for day in days:
                    keys[f"{PREFIX}{day}:{at}"] = len(keys) + 1
            args += [keys[first], field(found), BIT[item[2]]]
        script(keys=list(keys), args=args, client=pipe)
    return Marking(chunks)


def counted(marking: Marking, replies: Sequence[list]) -> Counter:
    """The `sent_failed` counts of the messages `marking` found reporting both, as funnel
    tally entries (minute, "sent_failed", None, phone, tracker, category) of the status that
    made it both (`replies`: its script calls' replies)."""
    both: Counter = Counter()
    for chunk, reply in zip(marking.chunks, replies, strict=True):
        for index in reply:
            minute, _wamid, _status, _code, *dimensions = chunk[int(index) - 1]
            both[(minute, "sent_failed", None, *dimensions)] += 1
    return both
