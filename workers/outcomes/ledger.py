"""The ledger: which single outcome every failed event ended in, so the books can balance.

Every failed event taken by the webhook ends in exactly one outcome (`OUTCOMES`): alerted
(counted in a delivered notification), resent (the business's sender accepted a resend),
dropped or silenced (by a rule), or dead (in the dead letters). `record` writes
event_id → outcome with HSETNX into a hash per UTC day (`wastatus:ledger:<YYYYMMDD>`, kept
for the dedup window plus a day; the id as its 16 bytes, `stored`) and checks the day before
too; recording the same outcome again is a no-op (replays are safe), a different one counts a
conflict. Memory: about 86 bytes per event (a 16-byte id and a short outcome in a hash), i.e.
~86 MB for a million failed events a day kept 9 days — see docs/rules.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import redis

OUTCOMES = ("alerted", "resent", "dropped", "silenced", "dead")
"""The ends an event can come to; each event must reach exactly one."""

DAY_PREFIX = "wastatus:ledger:"
"""`DAY_PREFIX + YYYYMMDD` (UTC): hash event_id → outcome of events recorded that day."""

COUNTS = "wastatus:ledger:counts"
"""Hash outcome → number of events first recorded with it (all time)."""

CONFLICTS = "wastatus:ledger:conflicts"
"""Number of times an event was recorded with an outcome other than its first one."""

CONFLICT_LOG = "wastatus:ledger:conflict-log"
"""The latest 1000 conflicts as "event_id first second" strings, newest first."""

KEEP_SECONDS = 9 * 86400
"""How long a day's hash lives after its last write: the 8-day dedup window plus a day."""

DAYS_KEPT = 10

_RECORD = """
local outcome = ARGV[1]
local added, conflicts = 0, 0
local function recorded(key, id, shown)
  local found = redis.call('HGET', key, id)
  if not found and shown ~= id then found = redis.call('HGET', key, shown) end
  return found
end
for i = 3, #ARGV, 2 do
  local id, shown = ARGV[i], ARGV[i + 1]
  local before = recorded(KEYS[2], id, shown)
  if not before and shown ~= id then before = redis.call('HGET', KEYS[1], shown) end
  if not before then
    if redis.call('HSETNX', KEYS[1], id, outcome) == 1 then
      added = added + 1
    else
      before = redis.call('HGET', KEYS[1], id)
    end
  end
  if before and before ~= outcome then
    conflicts = conflicts + 1
    redis.call('LPUSH', KEYS[5], shown .. ' ' .. before .. ' ' .. outcome)
  end
end
if added > 0 then
  redis.call('HINCRBY', KEYS[3], outcome, added)
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
if conflicts > 0 then
  redis.call('INCRBY', KEYS[4], conflicts)
  redis.call('LTRIM', KEYS[5], 0, 999)
end
return {added, conflicts}
"""


_REOPEN = """
local reopened = 0
for i = 2, #KEYS do
  for j = 1, #ARGV do
    local before = redis.call('HGET', KEYS[i], ARGV[j])
    if before then
      redis.call('HDEL', KEYS[i], ARGV[j])
      redis.call('HINCRBY', KEYS[1], before, -1)
      reopened = reopened + 1
    end
  end
end
return reopened
"""


def stored(event_id: str) -> bytes | str:
    """An event id as a ledger field: the 16 bytes of its 32 hex digits (half the memory of
    its text), any other id as it is. Days written before are read in both forms."""
    if len(event_id) == 32:
        try:
            return bytes.fromhex(event_id)
        except ValueError:
            pass
    return event_id


def shown(field: bytes) -> str:
    """The event id a ledger field stands for (`stored`'s inverse, for whole-ledger reads)."""
    if len(field) == 16:
        return field.hex()
    return field.decode("utf-8", "replace")


def day_key(when: float) -> str:
    """The ledger hash for the UTC day of `when`."""
    return DAY_PREFIX + time.strftime("%Y%m%d", time.gmtime(when))


def record(
    pipe: redis.Redis, outcome: str, event_ids: Iterable[str], now: float | None = None
) -> None:
    """Record `outcome` for `event_ids`; `pipe` may be a pipeline (the write joins it)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown ledger outcome {outcome!r}; expected one of {OUTCOMES}")
    ids = [event_id for event_id in event_ids if event_id]
    if not ids:
        return
    current = time.time() if now is None else now
    keys = [day_key(current), day_key(current - 86400), COUNTS, CONFLICTS, CONFLICT_LOG]
    args: list = [outcome, KEEP_SECONDS]
    for event_id in ids:
        args += [stored(event_id), event_id]
    pipe.register_script(_RECORD)(keys=keys, args=args, client=pipe)


def reopen(pipe: redis.Redis, event_ids: Iterable[str], now: float | None = None) -> None:
    """Forget the outcome of `event_ids` (and take them out of its count), so that an event
    sent around again by a replay ends in one outcome, not a conflict. Joins a pipeline."""
    ids = [event_id for event_id in event_ids if event_id]
    if not ids:
        return
    current = time.time() if now is None else now
    days = [day_key(current - day * 86400) for day in range(DAYS_KEPT)]
    fields = list(dict.fromkeys([*map(stored, ids), *ids]))  # and as days before stored them
    pipe.register_script(_REOPEN)(keys=[COUNTS, *days], args=fields, client=pipe)


def summary(connection: redis.Redis) -> dict:
    """Events per outcome, their total, and the conflicts (with up to 10 recent examples)."""
    with connection.pipeline(transaction=False) as pipe:
        pipe.hgetall(COUNTS)
        pipe.get(CONFLICTS)
        pipe.lrange(CONFLICT_LOG, 0, 9)
        counts, conflicts, samples = pipe.execute()
    outcomes = {outcome: 0 for outcome in OUTCOMES}
    for name, value in counts.items():
        outcomes[name.decode()] = int(value)
    return {
        "outcomes": outcomes,
        "total": sum(outcomes.values()),
        "conflicts": int(conflicts or 0),
        "conflict_samples": [sample.decode() for sample in samples],
    }


def outcomes_of(
    connection: redis.Redis, event_ids: list[str], now: float | None = None
) -> dict[str, str | None]:
    """The recorded outcome of each of `event_ids` (None if none), searching the kept days."""
    current = time.time() if now is None else now
    found: dict[str, str | None] = dict.fromkeys(event_ids)
    if not event_ids:
        return found
    with connection.pipeline(transaction=False) as pipe:
        for day in range(DAYS_KEPT):
            pipe.hmget(day_key(current - day * 86400), [stored(i) for i in event_ids])
            pipe.hmget(day_key(current - day * 86400), event_ids)  # as days before stored them
        for values in pipe.execute():
            for event_id, value in zip(event_ids, values, strict=True):
                if value is not None and found[event_id] is None:
                    found[event_id] = value.decode()
    return found
