"""Out-of-order safety: a failure alert never claims more than Meta said.

Meta does not promise the order of statuses: a `delivered` or `read` may arrive after the
`failed` that was alerted. With message tracking on (`WASTATUS_TRACK_MESSAGES`: the memory it
takes, about 80 bytes a failed message, is budgeted with the timelines, not added to every
alerted failure), the drain job `remember`s which alert group each failed message
went to (a hash per UTC day, `wastatus:fates:alerted:<day>`, kept `ALERTED_DAYS`); each web
process's background flush (`webhook/funnel.py`) hands over the wamids that reported
`delivered`, `read` or `played` since the last flush, and `mark` counts, once per message,
those that were alerted as failed into their group (`later_delivered`). The group's next
notification says so: "1 of 12 later reported delivered or read".
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import redis

from workers.alerting import groups
from workers.outcomes.timelines import field

ALERTED_PREFIX = "wastatus:fates:alerted:"
ALERTED_DAYS = 3
"""Days a failed message's alert group is remembered: later news after that is not linked."""

DAY = 86400
LATER_SUFFIX = ":later"
"""`groups.group_hash(gid) + LATER_SUFFIX`: the messages already counted as later delivered."""

_MARK = """
local prefix, suffix, keep = ARGV[1], ARGV[2], tonumber(ARGV[3])
local marked = 0
for i = 4, #ARGV do
  for d = 1, #KEYS do
    local gid = redis.call('HGET', KEYS[d], ARGV[i])
    if gid then
      local g = prefix .. gid
      if redis.call('EXISTS', g) == 1 and redis.call('SADD', g .. suffix, ARGV[i]) == 1 then
        redis.call('HINCRBY', g, 'later_delivered', 1)
        redis.call('EXPIRE', g .. suffix, keep)
        marked = marked + 1
      end
      break
    end
  end
end
return marked
"""


def _day_keys(now: float) -> list[str]:
    today = int(now // DAY)
    return [f"{ALERTED_PREFIX}{today - back}" for back in range(ALERTED_DAYS)]


def remember(pipe: redis.client.Pipeline, alerted: Iterable[tuple[str, str]], now: float) -> None:
    """Queue on `pipe` the group of each (wamid, gid) alerted as failed."""
    pairs = [(field(wamid), gid) for wamid, gid in alerted if wamid]
    if not pairs:
        return
    key = _day_keys(now)[0]
    pipe.hset(key, mapping=dict(pairs))
    pipe.expire(key, ALERTED_DAYS * DAY)


def mark(pipe: redis.client.Pipeline, wamids: Iterable[str], now: float | None = None) -> None:
    """Queue on `pipe` the check of `wamids` (delivered, read or played lately) against the
    messages alerted as failed; each one found counts once in its group."""
    fields = list({field(wamid) for wamid in wamids if isinstance(wamid, str)})
    if not fields:
        return
    now = time.time() if now is None else now
    keep = ALERTED_DAYS * DAY + 7 * DAY
    args = [groups.PREFIX, LATER_SUFFIX, keep, *fields]
    pipe.register_script(_MARK)(keys=_day_keys(now), args=args, client=pipe)


def later_delivered(connection: redis.Redis, gid: str) -> int:
    """How many messages of group `gid` later reported delivered, read or played."""
    return int(connection.hget(groups.group_hash(gid), "later_delivered") or 0)
