"""Delivery funnels: how many messages were sent, delivered, read, played, deleted or failed,
per phone number, per tracker (`biz_opaque_callback_data`) and per pricing category.

The web process tallies the statuses it reads (`webhook/funnel.py`) and `write`s its tally
here about once a second, in one round trip: one Lua call per time bucket, pipelined. Each UTC
minute and hour has a hash (`wastatus:funnel:m:<minute>`, `wastatus:funnel:h:<hour>`) whose
fields are `status|dimension|value` (a failure's code as `failed:131049|...`). Hours expire
after `WASTATUS_FUNNEL_RETENTION`; minutes after three hours (`MINUTES_KEPT`: no read goes
further back in minutes). Trackers are strings the sender chooses: each bucket takes at most
`WASTATUS_FUNNEL_MAX_TRACKERS` distinct ones (phone numbers and categories have fixed caps),
the rest count as `(other)`, so a sender that puts an order id in every message cannot grow
Redis without bound. The drain job adds each failed status's recipient to its tracker's list
(`record_failed`), for `wastatus funnel failed TRACKER` (a CSV export).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping

import redis

from workers import bounds

PREFIX = "wastatus:funnel:"
FAILED_PREFIX = PREFIX + "failed:"
"""`FAILED_PREFIX + tracker`: list of the latest failed recipients of that tracker (JSON)."""

DIMENSIONS = ("phone", "tracker", "category")
"""What a funnel is counted by: `phone_number_id`, `biz_opaque_callback_data`, and
`pricing.category/pricing.type/conversation.origin.type`."""

STATUSES = ("sent", "delivered", "read", "played", "deleted", "failed", "warning")

OTHER = "(other)"
"""The value a dimension's entries beyond its cap in one bucket are counted under."""

NONE = "-"
"""The value of a dimension a status does not carry (no tracker, no pricing)."""

PHONE_MAX = 1000
CATEGORY_MAX = 200
"""Distinct phone numbers and categories one bucket keeps (a business has a few of each)."""

VALUE_MAX = 128
"""Characters kept of a tracker, phone number id or pricing part."""

FAILED_KEEP = 1000
"""Recipients kept per tracker's failed list (the latest)."""

MINUTE, HOUR = 60, 3600
FINE_UP_TO = 3 * HOUR
"""Windows up to this long are read from minute buckets (exact), longer ones from hours."""
MINUTES_KEPT = 3 * HOUR
"""Minute buckets are kept as long as a read uses them (`FINE_UP_TO`), hour buckets the whole
retention: kept 14 days, minutes would take sixty times the memory of hours for no reader."""

_FLUSH = """
local caps = {tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])}
local names = {'phone', 'tracker', 'category'}
local allowed = {}
for i = 5, #ARGV, 4 do
  local d, value, status, n = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local seen = d .. '|' .. value
  local ok = allowed[seen]
  if ok == nil then
    ok = value == '-' or redis.call('SISMEMBER', KEYS[d + 1], value) == 1
      or redis.call('SCARD', KEYS[d + 1]) < caps[d]
    if ok and value ~= '-' then redis.call('SADD', KEYS[d + 1], value) end
    allowed[seen] = ok
  end
  if not ok then value = '(other)' end
  redis.call('HINCRBY', KEYS[1], status .. '|' .. names[d] .. '|' .. value, n)
end
for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
return 1
"""


def bucket_key(resolution: str, bucket: int) -> str:
    """The hash of minute (`m`) or hour (`h`) number `bucket` since the epoch."""
    return f"{PREFIX}{resolution}:{bucket}"


def _value(value: object) -> str:
    """A dimension's value as stored: valid UTF-8, short, never empty; `|` is allowed (the
    value is the last part of a field)."""
    if value is None or value == "":
        return NONE
    return bounds.text(str(value), VALUE_MAX)


def category(pricing: object, conversation: object) -> str:
    """`pricing.category/pricing.type/conversation.origin.type`, `-` for each part absent."""
    pricing = pricing if isinstance(pricing, dict) else {}
    conversation = conversation if isinstance(conversation, dict) else {}
    origin = conversation.get("origin")
    origin = origin.get("type") if isinstance(origin, dict) else None
    parts = (pricing.get("category"), pricing.get("type"), origin)
    if not any(parts):
        return NONE
    return "/".join(NONE if not part else str(part)[:40] for part in parts)


def write(
    pipe: redis.client.Pipeline,
    tally: Mapping[tuple, int],
    retention: float,
    max_trackers: int,
) -> None:
    """Queue a web process's `tally` on `pipe` (one Lua call per bucket; the caller executes
    the pipeline: one round trip).

    `tally` maps (minute, status, code, phone, tracker, category) to a count; `code` is None
    except for failed statuses.
    """
    buckets: dict[tuple[str, int], Counter] = {}
    for (minute, status, code, phone, tracker, kind), count in tally.items():
        status_field = f"{status}:{code}" if code is not None else status
        values = (_value(phone), _value(tracker), _value(kind))
        for resolution, bucket in (("m", minute), ("h", minute * MINUTE // HOUR)):
            counts = buckets.setdefault((resolution, bucket), Counter())
            for d, value in enumerate(values, 1):
                counts[(d, value, status)] += count
                if code is not None:
                    counts[(d, value, status_field)] += count
    if not buckets:
        return
    script = pipe.register_script(_FLUSH)
    # a bucket lives the retention past its end; minutes only as long as a read uses them
    ttls = {"h": int(retention) + HOUR, "m": int(min(retention, MINUTES_KEPT)) + HOUR}
    for (resolution, bucket), counts in buckets.items():
        key = bucket_key(resolution, bucket)
        keys = [key, *(f"{key}:{name}" for name in DIMENSIONS)]
        args: list = [ttls[resolution], PHONE_MAX, max_trackers, CATEGORY_MAX]
        for (d, value, status), count in counts.items():
            args += [d, value, status, count]
        script(keys=keys, args=args, client=pipe)


def funnel(connection: redis.Redis, by: str, since: float, now: float | None = None) -> list[dict]:
    """The funnel over the last `since` seconds by `by` (phone, tracker or category): one row
    per value with each status's count and the failure codes, most messages first.

    Up to three hours are read from minute buckets, longer windows from whole hours (so an
    hour's window may count up to an hour more).
    """
    if by not in DIMENSIONS:
        raise ValueError(f"by must be one of {', '.join(DIMENSIONS)}")
    now = time.time() if now is None else now
    start = now - max(since, 0)
    if since <= FINE_UP_TO:
        resolution, size = "m", MINUTE
    else:
        resolution, size = "h", HOUR
    keys = [bucket_key(resolution, b) for b in range(int(start // size), int(now // size) + 1)]
    rows: dict[str, dict] = {}
    with connection.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        for counts in pipe.execute():
            for raw, count in counts.items():
                status, dimension, value = raw.decode().split("|", 2)
                if dimension != by:
                    continue
                row = rows.get(value)
                if row is None:
                    row = rows[value] = {by: value, **dict.fromkeys(STATUSES, 0), "codes": {}}
                name, _, code = status.partition(":")
                if code:
                    row["codes"][code] = row["codes"].get(code, 0) + int(count)
                elif name in row:
                    row[name] += int(count)
    for row in rows.values():
        row["messages"] = row["sent"] + row["failed"]
        row["failure_rate"] = row["failed"] / row["messages"] if row["messages"] else 0.0
        row["codes"] = dict(sorted(row["codes"].items(), key=lambda pair: (-pair[1], pair[0])))
    return sorted(rows.values(), key=lambda row: (-row["messages"], row[by]))


def record_failed(
    pipe: redis.Redis, events: Iterable[Mapping], retention: float, now: float | None = None
) -> None:
    """Add each failed status that carries a tracker to that tracker's list (the latest
    `FAILED_KEEP`, kept for `retention`); `pipe` is the drain job's transaction."""
    now = time.time() if now is None else now
    by_tracker: dict[str, list[str]] = {}
    for event in events:
        tracker = event.get("biz_opaque_callback_data")
        if event.get("kind") != "status" or not tracker:
            continue
        entry = {
            "message_id": event.get("message_id"),
            "recipient_id": event.get("recipient_id"),
            "phone_number_id": event.get("phone_number_id"),
            "code": event.get("code"),
            "title": (event.get("catalog") or {}).get("title"),
            "timestamp": event.get("timestamp"),
            "received_at": event.get("received_at") or now,
        }
        by_tracker.setdefault(_value(tracker), []).append(json.dumps(entry, ensure_ascii=False))
    for tracker, entries in by_tracker.items():
        key = FAILED_PREFIX + tracker
        pipe.lpush(key, *entries)
        pipe.ltrim(key, 0, FAILED_KEEP - 1)
        pipe.expire(key, int(retention))


def failed_recipients(connection: redis.Redis, tracker: str) -> list[dict]:
    """The latest failed recipients of `tracker`, newest first (recipients whole: mask them
    before showing unless `WASTATUS_LOG_PII`)."""
    raw = connection.lrange(FAILED_PREFIX + _value(tracker), 0, -1)
    return [json.loads(item) for item in raw]
