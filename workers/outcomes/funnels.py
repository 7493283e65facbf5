"""Delivery funnels: how many messages were sent, delivered, read, played, deleted or failed,
per phone number, per tracker (`biz_opaque_callback_data`) and per pricing category.

The web process tallies the statuses it reads (`webhook/funnel.py`) and `write`s its tally
here about once a second, in one round trip: one Lua call per time bucket, pipelined. Each UTC
minute and hour has a hash (`wastatus:funnel:m:<minute>`, `wastatus:funnel:h:<hour>`), both
kept `WASTATUS_FUNNEL_RETENTION`. A hash holds one field per dimension value, `<d>|<value>`
(`d` is `p` phone, `t` tracker, `c` category), whose value packs every count of it:
`<sent>,<delivered>,<read>,<played>,<deleted>,<failed>,<warning>,<sent_failed>;<code>:<n>,…`
(zeros left empty, trailing ones dropped). A busy minute (50 trackers on 3 numbers) is about
sixty short fields, which Redis keeps in its compact encoding (a listpack): a field per
status and value would take six times the memory (docs/operations.md, "Message fates").
Trackers are strings the sender chooses: each bucket takes at most
`WASTATUS_FUNNEL_MAX_TRACKERS` distinct ones (phone numbers and categories have fixed caps;
the field `#<d>` counts them), the rest count as `(other)`, so a sender that puts an order id
in every message cannot grow Redis without bound. The drain job adds each failed status's
recipient to its tracker's list (`record_failed`), for `wastatus funnel failed TRACKER` (a CSV
export).
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

LETTER = {"phone": "p", "tracker": "t", "category": "c"}
"""A dimension's letter in a bucket's field names."""

STATUSES = ("sent", "delivered", "read", "played", "deleted", "failed", "warning")

SLOTS = (*STATUSES, "sent_failed")
"""The counts a field packs, in order; `sent_failed` counts the messages that reported both
sent and failed (known from their timelines with message tracking on, from
`workers.fates.marks` without), so that a funnel counts them once."""

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
"""Windows up to this long are read from minute buckets only; longer ones from the whole
hours they span plus the minutes of the partial hours at each end (exact either way)."""

_FLUSH = """
local caps = {p = tonumber(ARGV[2]), t = tonumber(ARGV[3]), c = tonumber(ARGV[4])}
local key = KEYS[1]
local function parse(packed)
  local counts, codes, order = {}, {}, {}
  local head, tail = packed, ''
  local cut = string.find(packed, ';', 1, true)
  if cut then head, tail = string.sub(packed, 1, cut - 1), string.sub(packed, cut + 1) end
  local i = 1
  for part in string.gmatch(head .. ',', '([^,]*),') do
    counts[i] = tonumber(part) or 0
    i = i + 1
  end
  for code, n in string.gmatch(tail, '([^,:]+):(%d+)') do
    if not codes[code] then order[#order + 1] = code end
    codes[code] = (codes[code] or 0) + tonumber(n)
  end
  return counts, codes, order
end
local function pack(counts, codes, order)
  local last = 0
  for i = 1, 8 do if (counts[i] or 0) ~= 0 then last = i end end
  local parts = {}
  for i = 1, last do
    local n = counts[i] or 0
    parts[i] = n == 0 and '' or tostring(n)
  end
  local text = table.concat(parts, ',')
  if #order > 0 then
    local pairs_ = {}
    for _, code in ipairs(order) do pairs_[#pairs_ + 1] = code .. ':' .. codes[code] end
    text = text .. ';' .. table.concat(pairs_, ',')
  end
  return text
end
for i = 5, #ARGV, 4 do
  local d, value, counts, codes = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local name = d .. '|' .. value
  local current = redis.call('HGET', key, name)
  if not current and value ~= '-' then
    if tonumber(redis.call('HGET', key, '#' .. d) or '0') < caps[d] then
      redis.call('HINCRBY', key, '#' .. d, 1)
    else
      name = d .. '|(other)'
      current = redis.call('HGET', key, name)
    end
  end
  local have, have_codes, order = parse(current or '')
  local add, add_codes, add_order = parse(counts .. ';' .. codes)
  for j = 1, 8 do have[j] = (have[j] or 0) + (add[j] or 0) end
  for _, code in ipairs(add_order) do
    if not have_codes[code] then order[#order + 1] = code end
    have_codes[code] = (have_codes[code] or 0) + add_codes[code]
  end
  redis.call('HSET', key, name, pack(have, have_codes, order))
end
redis.call('EXPIRE', key, ARGV[1])
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


def _packed(counts: list[int], codes: Mapping[int, int]) -> tuple[str, str]:
    """A field's counts and codes as the flush script takes them (zeros left empty)."""
    last = max((i for i, n in enumerate(counts) if n), default=-1)
    head = ",".join(str(n) if n else "" for n in counts[: last + 1])
    return head, ",".join(f"{code}:{n}" for code, n in codes.items())


def write(
    pipe: redis.client.Pipeline,
    tally: Mapping[tuple, int],
    retention: float,
    max_trackers: int,
) -> None:
    """Queue a web process's `tally` on `pipe` (one Lua call per bucket; the caller executes
    the pipeline: one round trip).

    `tally` maps (minute, status, code, phone, tracker, category) to a count; `code` is None
    except for failed statuses; the status `sent_failed` counts messages that reported both.
    """
    slot = {name: i for i, name in enumerate(SLOTS)}
    buckets: dict[tuple[str, int], dict] = {}
    for (minute, status, code, phone, tracker, kind), count in tally.items():
        at = slot.get(status)
        if at is None:
            continue
        values = (("p", _value(phone)), ("t", _value(tracker)), ("c", _value(kind)))
        for resolution, bucket in (("m", minute), ("h", minute * MINUTE // HOUR)):
            fields = buckets.setdefault((resolution, bucket), {})
            for name in values:
                counts, codes = fields.setdefault(name, ([0] * len(SLOTS), Counter()))
                counts[at] += count
                if code is not None and status == "failed":
                    codes[code] += count
    if not buckets:
        return
    script = pipe.register_script(_FLUSH)
    ttl = int(retention) + HOUR  # a bucket lives the retention past its end
    for (resolution, bucket), fields in buckets.items():
        args: list = [ttl, PHONE_MAX, max_trackers, CATEGORY_MAX]
        for (d, value), (counts, codes) in fields.items():
            args += [d, value, *_packed(counts, codes)]
        script(keys=[bucket_key(resolution, bucket)], args=args, client=pipe)


def _buckets(since: float, now: float) -> list[str]:
    """The minute and hour buckets that cover the last `since` seconds exactly (to the
    minute): whole hours inside the window, minutes for the partial hours at its ends."""
    first = int((now - max(since, 0)) // MINUTE)
    last = int(now // MINUTE)
    per_hour = HOUR // MINUTE
    if since <= FINE_UP_TO:
        return [bucket_key("m", m) for m in range(first, last + 1)]
    first_hour = -(-first // per_hour)  # the first hour that starts inside the window
    end_hour = (last + 1) // per_hour  # hours before this one end inside it
    keys = [bucket_key("m", m) for m in range(first, first_hour * per_hour)]
    keys += [bucket_key("h", h) for h in range(first_hour, end_hour)]
    keys += [bucket_key("m", m) for m in range(end_hour * per_hour, last + 1)]
    return keys


def _add(row: dict, packed: str) -> None:
    head, _, tail = packed.partition(";")
    for name, part in zip(SLOTS, head.split(","), strict=False):
        if part:
            row[name] += int(part)
    for pair in tail.split(",") if tail else ():
        code, _, count = pair.rpartition(":")
        row["codes"][code] = row["codes"].get(code, 0) + int(count)


def _add_old(row: dict, status: str, count: int) -> None:
    """A field written before the packed format (`status|dimension|value`), read until its
    bucket expires."""
    name, _, code = status.partition(":")
    if code:
        row["codes"][code] = row["codes"].get(code, 0) + count
    elif name in row:
        row[name] += count


def funnel(connection: redis.Redis, by: str, since: float, now: float | None = None) -> list[dict]:
    """The funnel over the last `since` seconds by `by` (phone, tracker or category): one row
    per value with each status's count, the messages (sent or failed, each message once when
    known) and the failure codes, most messages first."""
    if by not in DIMENSIONS:
        raise ValueError(f"by must be one of {', '.join(DIMENSIONS)}")
    now = time.time() if now is None else now
    letter = LETTER[by]
    rows: dict[str, dict] = {}

    def row_of(value: str) -> dict:
        row = rows.get(value)
        if row is None:
            row = rows[value] = {by: value, **dict.fromkeys(SLOTS, 0), "codes": {}}
        return row

    with connection.pipeline(transaction=False) as pipe:
        for key in _buckets(since, now):
            pipe.hgetall(key)
        for fields in pipe.execute():
            for raw, packed in fields.items():
                name = raw.decode()
                first, _, rest = name.partition("|")
                if first == letter:
                    _add(row_of(rest), packed.decode())
                elif len(first) > 1:
                    dimension, _, value = rest.partition("|")
                    if dimension == by:
                        _add_old(row_of(value), first, int(packed))
    for row in rows.values():
        row["messages"] = row["sent"] + row["failed"] - row["sent_failed"]
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
