"""Message timelines (opt-in, `WASTATUS_TRACK_MESSAGES`): every status of every message, kept
that long in a compact record, with its state resolved by rules rather than arrival order.

Storage is sized for millions of messages a day. A record is one field of a hash: the hash is
`wastatus:m:<day>:<shard>` (the UTC day the message was first seen, 64 shards by CRC-32 of the
wamid), the field is the wamid, and the value is text:

    <phone number id>\\x1f<tracker>\\x1f<pricing>;<status>;<status>…

where each status is `<letter><Meta's timestamp>+<seconds until it arrived>[:<error code>]`,
numbers in base 36 (`s` sent, `d` delivered, `r` read, `p` played, `f` failed, `x` deleted,
`w` warning). A hash field costs no key, object or expiry entry of its own; a day's hashes
expire together, `WASTATUS_TRACK_MESSAGES` after the day ends. A record with three statuses
takes about 150 bytes (`bench/timeline_memory.py` measures it).

`record` writes all the statuses of one webhook in one Lua call (one round trip). It also
keeps the stuck index, a sorted set of the wamids whose only news is `sent`, scored by when
they become stuck (`WASTATUS_STUCK_AFTER` after Meta's `sent` timestamp), so that the stuck
scan (`workers.fates.stuck`) reads only what is due.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import redis

import catalog

PREFIX = "wastatus:m:"
SHARDS = 64
DAY = 86400

STUCK_DUE = "wastatus:fates:stuck:due"
"""Sorted set `field(wamid)` → when it becomes stuck (Unix seconds), while its only status is
`sent`."""

LETTERS = {"sent": "s", "delivered": "d", "read": "r", "played": "p", "failed": "f",
           "deleted": "x", "warning": "w"}  # fmt: skip
NAMES = {letter: name for name, letter in LETTERS.items()}

RANK = {"sent": 1, "delivered": 2, "read": 3, "played": 3, "deleted": 4}
"""How far a message got; a status never goes back to a lower rank, and `failed` is final."""

HEADER_MAX = 64
"""Characters kept of the phone number id and of the tracker in a record."""

_ABBREVIATIONS = {
    "marketing": "mk", "utility": "ut", "authentication": "au", "service": "sv",
    "regular": "rg", "free_customer_service": "fc", "free_entry_point": "fe",
    "referral_conversion": "rc", "authentication_international": "ai",
    "marketing_lite": "ml", "user_initiated": "ui", "business_initiated": "bi",
}  # fmt: skip
_EXPANSIONS = {short: word for word, short in _ABBREVIATIONS.items()}

_RECORD = """
local days, now, stuck = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local expire_at = ARGV[4]
local US = string.char(31)
local due = KEYS[#KEYS]
local late, both, again = {}, {}, {}
local n = 0
for i = 5, #ARGV, 6 do
  local wamid, prefix, rest, header, letter, ts = ARGV[i], ARGV[i + 1], ARGV[i + 2],
    ARGV[i + 3], ARGV[i + 4], tonumber(ARGV[i + 5])
  local base = n * days
  n = n + 1
  local key, record = KEYS[base + 1], nil
  for d = 1, days do
    local found = redis.call('HGET', KEYS[base + d], wamid)
    if found then
      key, record = KEYS[base + d], found
      break
    end
  end
  local changed, created = false, not record
  if created then
    record, changed = header, true
  elseif string.sub(header, -1) ~= US then
    -- pricing may come on a later status than the first: the header takes it then
    local cut = string.find(record, ';', 1, true) or (#record + 1)
    if string.sub(record, cut - 1, cut - 1) == US then
      record, changed = header .. string.sub(record, cut), true
    end
  end
  if string.find(record, prefix, 1, true) then
    again[#again + 1] = n  -- a status Meta delivered again: not counted twice
  else
    local other = (letter == 'f' and ';s') or (letter == 's' and ';f') or nil
    local first = not string.find(record, ';' .. letter, 1, true)
    if other and first and string.find(record, other, 1, true) then
      both[#both + 1] = n  -- the message now reported both sent and failed: counted once
    end
    record, changed = record .. prefix .. rest, true
  end
  if changed then redis.call('HSET', key, wamid, record) end
  if created then redis.call('EXPIREAT', key, expire_at) end
  local beyond = string.find(record, ';[drpfx]')
  if letter == 's' and not beyond then
    if stuck > 0 then redis.call('ZADD', due, 'NX', ts + stuck, wamid) end
  elseif letter ~= 's' and letter ~= 'w' then
    redis.call('ZREM', due, wamid)
    if letter ~= 'f' and letter ~= 'x' and string.find(record, ';f', 1, true) then
      late[#late + 1] = wamid
    end
  end
end
return {late, both, again}
"""


def _b36(number: int) -> str:
    if number < 0:
        return "-" + _b36(-number)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if number == 0:
            return text


def _clean(value: object, limit: int = HEADER_MAX) -> str:
    """A header part: no separator characters, short, valid UTF-8 (surrogates replaced)."""
    if value is None:
        return ""
    text = str(value)[:limit]
    text = text.replace(";", ",").replace("\x1f", " ")
    return text.encode("utf-8", "replace").decode("utf-8")


def _abbreviated(kind: str | None) -> str:
    if not kind or kind == "-":
        return ""
    return "/".join(_ABBREVIATIONS.get(part, part[:24]) for part in kind.split("/"))


def field(wamid: str) -> bytes:
    """The hash field of `wamid`: Meta's `wamid.<base64>` as the bytes it encodes (16 fewer
    than its text, a tenth of a record), anything else as its text; a marker byte says which."""
    body = wamid.removeprefix("wamid.")
    if body != wamid:
        try:
            raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except (ValueError, binascii.Error):
            raw = None
        if raw is not None:
            for marker in (b"\x00", b"\x01"):
                if wamid_of(marker + raw) == wamid:
                    return marker + raw
    return b"\x02" + wamid.encode("utf-8", "replace")


def wamid_of(stored: bytes) -> str:
    """The wamid a hash field (or stuck index member) stands for."""
    marker, rest = stored[:1], stored[1:]
    if marker == b"\x02":
        return rest.decode("utf-8", "replace")
    text = base64.b64encode(rest).decode()
    return "wamid." + (text if marker == b"\x00" else text.rstrip("="))


def shard_keys(wamid: str, now: float, retention: float) -> list[str]:
    """The hashes a record of `wamid` may be in, today's first."""
    shard = zlib.crc32(wamid.encode("utf-8", "replace")) % SHARDS
    today = int(now // DAY)
    days = math.ceil(retention / DAY) + 1
    return [f"{PREFIX}{today - back}:{shard}" for back in range(days)]


def record(
    connection: redis.Redis,
    statuses: Iterable[tuple],
    received_at: float,
    retention: float,
    stuck_after: float,
) -> Recorded:
    """Add each status (wamid, Meta's timestamp, status, code, phone, tracker, pricing
    category: `Reading.tracked`) to its message's record, in one round trip."""
    keys: list[str] = []
    args: list = []
    taken: list[tuple] = []
    now = int(received_at)
    days = math.ceil(retention / DAY) + 1
    expire_at = (now // DAY + 1) * DAY + math.ceil(retention)
    for status in statuses:
        wamid, timestamp, name, code, phone, tracker, kind = status
        letter = LETTERS.get(name)
        if letter is None or not isinstance(wamid, str):
            continue
        wamid = wamid[:256]
        stored = field(wamid)
        prefix = f";{letter}{_b36(timestamp)}+"
        rest = _b36(now - timestamp) + (f":{_b36(code)}" if code is not None else "")
        header = f"{_clean(phone)}\x1f{_clean(tracker)}\x1f{_abbreviated(kind)}"
        keys += shard_keys(wamid, received_at, retention)
        args += [stored, prefix, rest, header, letter, timestamp]
        taken.append(status)
    if not args:
        return Recorded([], [], [])
    keys.append(STUCK_DUE)
    late, both, again = connection.register_script(_RECORD)(
        keys=keys, args=[days, now, math.ceil(stuck_after), expire_at, *args]
    )
    return Recorded(
        [wamid_of(stored) for stored in late],
        [taken[int(i) - 1] for i in both],
        [taken[int(i) - 1] for i in again],
    )


@dataclass(frozen=True)
class Recorded:
    """What recording a webhook's statuses found out."""

    late: list[str]
    """The wamids that had failed and now got a later delivered, read or played."""
    both: list[tuple]
    """The statuses (as given) by which a message first reported both sent and failed: the
    funnels count such a message once (`sent_failed`)."""
    again: list[tuple]
    """The statuses already recorded (Meta delivered them again): the funnels skip them."""


@dataclass(frozen=True)
class Status:
    """One status of a timeline."""

    status: str
    timestamp: int
    arrived: int
    code: int | None

    def to_dict(self) -> dict:
        found = {"status": self.status, "timestamp": self.timestamp, "arrived": self.arrived,
                 "code": self.code}  # fmt: skip
        if self.code is not None:
            entry = catalog.explain({"code": self.code}, "cloud")
            found["error"] = {key: entry.get(key) for key in ERROR_KEYS}
        return found


ERROR_KEYS = ("title", "category", "severity", "explanation", "action", "known")
"""What a timeline shows of a failed status's catalog entry."""


def parse(wamid: str, raw: str) -> dict:
    """A stored record as a timeline: its statuses in Meta's order and its resolved state."""
    header, *entries = raw.split(";")
    phone, tracker, kind = [*header.split("\x1f"), "", "", ""][:3]
    statuses = []
    for entry in entries:
        letter, body = entry[:1], entry[1:]
        stamp, _, after = body.partition("+")
        delay, _, code = after.partition(":")
        timestamp = int(stamp, 36)
        arrived = timestamp + (-int(delay[1:], 36) if delay.startswith("-") else int(delay, 36))
        statuses.append(Status(NAMES.get(letter, letter), timestamp, arrived,
                               int(code, 36) if code else None))  # fmt: skip
    statuses.sort(key=lambda status: (status.timestamp, status.arrived))
    pricing = "/".join(_EXPANSIONS.get(part, part) for part in kind.split("/")) if kind else None
    return {
        "message_id": wamid,
        "phone_number_id": phone or None,
        "tracker": tracker or None,
        "pricing": pricing,
        "state": state([status.status for status in statuses]),
        "statuses": [status.to_dict() for status in statuses],
    }


def state(names: Iterable[str]) -> str | None:
    """The message's state by rules, whatever the arrival order: `failed` is final; `read`
    and `played` imply `delivered`; a status never goes back."""
    best, best_rank = None, 0
    for name in names:
        if name == "failed":
            return "failed"
        rank = RANK.get(name, 0)
        if rank > best_rank:
            best, best_rank = name, rank
    return best


def timeline(
    connection: redis.Redis, wamid: str, retention: float, now: float | None = None
) -> dict | None:
    """The timeline of `wamid`, or None when no status of it is kept."""
    now = time.time() if now is None else now
    with connection.pipeline(transaction=False) as pipe:
        for key in shard_keys(wamid, now, retention):
            pipe.hget(key, field(wamid))
        found = next((raw for raw in pipe.execute() if raw is not None), None)
    return None if found is None else parse(wamid, found.decode("utf-8", "replace"))


def timelines(
    connection: redis.Redis, wamids: list[str], retention: float, now: float | None = None
) -> dict[str, dict]:
    """The timelines of several wamids in one round trip (those kept)."""
    now = time.time() if now is None else now
    per = math.ceil(retention / DAY) + 1
    with connection.pipeline(transaction=False) as pipe:
        for wamid in wamids:
            for key in shard_keys(wamid, now, retention):
                pipe.hget(key, field(wamid))
        replies = pipe.execute()
    found = {}
    for i, wamid in enumerate(wamids):
        raw = next((item for item in replies[i * per : (i + 1) * per] if item is not None), None)
        if raw is not None:
            found[wamid] = parse(wamid, raw.decode("utf-8", "replace"))
    return found
