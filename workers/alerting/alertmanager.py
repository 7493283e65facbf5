"""The `alertmanager` receiver: each alert group as one Alertmanager alert (API v2).

A notification delivered to this receiver is POSTed to `/api/v2/alerts` of every URL of the
receiver (the members of an HA cluster: Alertmanagers do not share alerts among themselves);
it is accepted when one of them accepts it. The alert's labels are for Alertmanager's routing
(`alertname`, `route`, `code`, `api`, `category`, `severity`, `phone_number_id` and the
group's own `group_by` labels; never a recipient's number), its annotations for people (the
catalog's explanation and action in `WASTATUS_LANG`), `startsAt` the group's first event.

Every post carries an explicit `endsAt` `LIFETIME_SECONDS` ahead, and while the group is open
the `refresh` job posts it again every `REFRESH_SECONDS` (all open alerts of a receiver in one
request), so Alertmanager keeps it firing whatever its `resolve_timeout`, an Alertmanager that
restarted empty gets it back within a minute, and an alert wastatus stops speaking for (a
stopped service) ends by itself within `LIFETIME_SECONDS`. When the group closes in wastatus
(`workers.alerts`, no event for `WASTATUS_GROUP_RESOLVE`) the flush marks it resolved in the
same Lua call and the alert is posted once more with `endsAt` the time it closed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis
from prometheus_client import Counter

from workers import logs
from workers.alerting import text as alert_text
from workers.delivery import DeliveryResult, post_json
from workers.jobs import enqueue_once, job_connection, new_id
from workers.logs import PHONE_FIELDS, mask_phone
from workers.queues import ALERTS, get_queue
from workers.settings import Settings, current

API_PATH = "/api/v2/alerts"

ALERTNAME = "WhatsAppMessageFailed"
ALERTNAME_EXHAUSTED = "WhatsAppResendExhausted"
"""`alertname` of a group of failures, and of a group of failures whose resends ran out."""

STANDARD_LABELS = ("code", "api", "category", "severity", "phone_number_id")
"""Labels taken from the group's events when every event of the notification agrees on them
(a route's `group_by` labels are always there: they are what its events share)."""

RECIPIENT_FIELDS = frozenset(
    {"recipient_id", "recipient_participant_id", "recipient_prefix", "recipient", "wa_id", "from"}
)
"""Never labels: an end user's number is personal, and as a label it would make one alert
(and one series in Alertmanager's memory) per customer."""

GROUP_LABEL = "wastatus_group"
"""Added (the group's id) when a recipient field was left out of the labels, so two groups
still make two alerts."""

LABEL_VALUE_MAX = 256
ANNOTATION_MAX = 4096
"""Characters kept of a label value (part of the alert's identity) and of an annotation."""
REFRESH_SECONDS = 60.0
"""How often an open group's alert is posted again (Prometheus' clients: 30 s to 3 min)."""

LIFETIME_SECONDS = 300.0
"""`endsAt` of a firing post lies this far ahead: four refreshes may fail before
Alertmanager lets the alert end by itself."""

LEASE_GRACE_SECONDS = 3600.0
"""An open group is notified at least every `repeat_interval`; an alert not notified again
for that plus this long belongs to a group that closed unseen (its notification arrived
after the close), and is resolved."""

CHUNK = 500
"""Alerts per refresh request."""

RECORDS = "wastatus:alertmanager:alerts"
"""Hash: group id -> JSON of the alert posted last (labels, annotations, startsAt), its
receiver's URLs, and which notification it came from."""

RESOLVED = "wastatus:alertmanager:resolved"
"""Hash: group id -> when the group closed (unix seconds), until the resolved alert is
accepted (or Alertmanager has let it end by itself)."""

REFRESH_KEY = "wastatus:alertmanager:refresh"
"""The id of the one refresh job allowed to run (expires, so a lost job is replaced)."""

REFRESH_JOB = "workers.alerting.alertmanager.refresh"
REFRESH_TOKEN_SECONDS = 3 * REFRESH_SECONDS

log = logging.getLogger("wastatus.alerts")

POSTS = Counter(
    "wastatus_alertmanager_posts",
    "POSTs to an Alertmanager's /api/v2/alerts, by kind (notification, refresh, resolved)"
    " and result (accepted, failed), one per Alertmanager URL.",
    ["kind", "result"],
)

_NAME_BAD = re.compile(r"[^a-zA-Z0-9_]")


def base_url(url: str) -> str:
    """An Alertmanager's base URL (a trailing `/api/v2/alerts` cut back); ValueError if it is
    not http(s)."""
    text = str(url).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an alertmanager URL must be http:// or https://")
    return text.rstrip("/").removesuffix(API_PATH).rstrip("/")


def label_name(key: str) -> str:
    """`key` as a valid Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not `__`-prefixed."""
    name = _NAME_BAD.sub("_", str(key))
    if not name or name[0].isdigit():
        name = "_" + name
    while name.startswith("__"):  # reserved for Prometheus' own labels
        name = name[1:]
    return name


def label_value(value: object, limit: int = LABEL_VALUE_MAX) -> str:
    """`value` as label text: valid UTF-8 (lone surrogates replaced), at most `limit`
    characters."""
    if value is None:
        return ""
    text = str(value).encode("utf-8", "replace").decode("utf-8")
    return text[:limit]


def _shared(items: Sequence[Mapping], key: str) -> str:
    values = {label_value(item.get(key)) for item in items}
    return values.pop() if len(values) == 1 else ""


def labels(alert: Mapping, settings: Settings) -> dict[str, str]:
    """The Alertmanager labels of a wastatus alert (the notification JSON, docs/alerts.md).

    `group_labels` (the route's `group_by` fields, and whatever other keys an alert brings,
    `alertname` included) come last and win. Recipient numbers are left out; any other
    phone number is masked unless `WASTATUS_LOG_PII`.
    """
    items = alert.get("alerts") or []
    found: dict[str, object] = {
        "alertname": ALERTNAME_EXHAUSTED if alert.get("retry_exhausted") else ALERTNAME,
        "route": alert.get("route") or "default",
    }
    for key in STANDARD_LABELS:
        found[key] = _shared(items, key)
    found.update(alert.get("group_labels") or {})
    result: dict[str, str] = {}
    left_out = False
    for key, value in found.items():
        if key in RECIPIENT_FIELDS:
            left_out = left_out or value not in (None, "")
            continue
        text = label_value(value)
        if key in PHONE_FIELDS and not settings.log_pii and text:
            text = mask_phone(text)
        if text:
            result[label_name(key)] = text
    if left_out and alert.get("group_id"):
        result[GROUP_LABEL] = label_value(alert["group_id"])
    return result


def annotations(alert: Mapping, lang: str) -> dict[str, str]:
    """What people read in Alertmanager's notifications, in `lang`; empty ones left out."""
    first = (alert.get("alerts") or [{}])[0]
    found = {
        "summary": alert_text.summary(alert, lang),
        "description": (first.get("explanation") or {}).get(lang),
        "action": (first.get("action") or {}).get(lang),
        "resend": alert_text.resend_advice(alert, lang),
        "count": str(alert.get("count", "")),
        "last_seen": alert.get("last_seen"),
        "group_key": alert.get("group_key"),
        "console": alert.get("url"),  # the group's console page (WASTATUS_PUBLIC_URL)
    }
    return {key: label_value(value, ANNOTATION_MAX) for key, value in found.items() if value}


def iso(timestamp: float) -> str:
    """Unix seconds as RFC 3339 UTC with milliseconds, as Alertmanager reads times."""
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def postable(alert: Mapping, settings: Settings) -> dict[str, Any]:
    """The Alertmanager alert of a wastatus alert, without `endsAt` (set at each post)."""
    found: dict[str, Any] = {
        "labels": labels(alert, settings),
        "annotations": annotations(alert, settings.lang),
    }
    if alert.get("first_seen"):
        found["startsAt"] = alert["first_seen"]
    if alert.get("url"):
        found["generatorURL"] = alert["url"]  # the group's console page (WASTATUS_PUBLIC_URL)
    return found


def ending(found: Mapping[str, Any], ends_at: float) -> dict[str, Any]:
    """`found` with `endsAt`, never before its `startsAt` (Alertmanager refuses that)."""
    starts = _seconds(found.get("startsAt"))
    if starts is not None:
        ends_at = max(ends_at, starts)
    return {**found, "endsAt": iso(ends_at)}


def post(urls: Sequence[str], alerts: list[dict], timeout: float, kind: str) -> DeliveryResult:
    """POST `alerts` to every Alertmanager of `urls`; ok when one of them accepted them.

    Errors name an Alertmanager by its position, never by its URL (it may hold a password).
    """
    body = json.dumps(alerts, ensure_ascii=False, separators=(",", ":")).encode()
    accepted, errors, waits = 0, [], []
    for index, url in enumerate(urls):
        result = post_json(url + API_PATH, body, {}, timeout)
        POSTS.labels(kind, "accepted" if result.ok else "failed").inc()
        if result.ok:
            accepted += 1
            continue
        errors.append(f"alertmanager {index + 1}: {result.error}")
        if result.retry_after_seconds is not None:
            waits.append(result.retry_after_seconds)
    if accepted:
        if errors:  # the cluster has the alert; say which member did not
            logs.log(log, "alertmanager.partial", logging.WARNING, kind=kind, errors=errors)
        return DeliveryResult(True, 200)
    return DeliveryResult(False, None, min(waits) if waits else None, "; ".join(errors))


def send(urls: Sequence[str], alert: Mapping, settings: Settings) -> DeliveryResult:
    """One try at delivering a notification: its group's alert to every URL, firing, or ended
    now when the notification says the group resolved (a health recovery)."""
    ends = time.time() if alert.get("status") == "resolved" else time.time() + LIFETIME_SECONDS
    found = ending(postable(alert, settings), ends)
    return post(urls, [found], settings.http_timeout, "notification")


# ---- keeping the alert firing while the group is open, and resolving it ----------------

_TRACK = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local was = cjson.decode(old)
  -- the same opening of the group: its events began no later than the tracked one's last
  if tonumber(ARGV[3]) <= tonumber(was.last_seen) then
    if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end  -- resolved already
    if was.nid > ARGV[4] then return 0 end  -- a newer notification is tracked
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

_FORGET = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

_PASS_ON = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) return 1 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


def track(
    connection: redis.Redis,
    urls: Sequence[str],
    alert: Mapping,
    state: Mapping[str, str],
    settings: Settings,
) -> bool:
    """Remember the alert a receiver just accepted, to post it again until its group closes.

    A replayed dead letter is sent once, not kept firing: its group may be long gone.
    """
    gid = state.get("gid")
    if alert.get("replay_of") or not gid:
        return False
    meta = json.loads(state.get("meta") or "{}")
    repeat = float(meta.get("repeat_interval") or settings.repeat_interval)
    record = {
        "nid": alert.get("id") or "",
        "first_seen": float(state.get("first_seen") or 0),
        "last_seen": float(state.get("last_seen") or 0),
        "lease_until": round(time.time() + repeat + LEASE_GRACE_SECONDS, 3),
        "urls": list(urls),
        "alert": postable(alert, settings),
    }
    raw = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    script = connection.register_script(_TRACK)
    kept = script(keys=[RECORDS, RESOLVED], args=[gid, raw, record["first_seen"], record["nid"]])
    if kept:
        ensure_refresh(connection)
    return bool(kept)


@dataclass(frozen=True)
class _Entry:
    gid: str
    raw: bytes
    urls: tuple[str, ...]
    alert: dict
    ended: float | None


def _entries(connection: redis.Redis, now: float, gids: Sequence[str] | None = None) -> list:
    if gids is None:
        records = connection.hgetall(RECORDS)
        resolved = connection.hgetall(RESOLVED)
    else:
        with connection.pipeline(transaction=False) as pipe:
            pipe.hmget(RECORDS, list(gids))
            pipe.hmget(RESOLVED, list(gids))
            raws, ends = pipe.execute()
        records = {gid.encode(): raw for gid, raw in zip(gids, raws, strict=True) if raw}
        resolved = {gid.encode(): end for gid, end in zip(gids, ends, strict=True) if end}
    found = []
    for key, raw in records.items():
        record = json.loads(raw)
        ended = float(resolved[key]) if key in resolved else None
        if ended is None and now > record["lease_until"]:
            # its group closed without a word here (see LEASE_GRACE_SECONDS): resolve it now
            connection.hsetnx(RESOLVED, key, f"{now:.3f}")
            ended = now
            logs.log(log, "alertmanager.lease_expired", logging.WARNING, group=key.decode())
        found.append(_Entry(key.decode(), raw, tuple(record["urls"]), record["alert"], ended))
    return found


def _post_entries(connection: redis.Redis, entries: list[_Entry], settings: Settings,
                  now: float) -> dict[str, int]:  # fmt: skip
    """Post each entry (firing ones `LIFETIME_SECONDS` ahead); forget the resolved ones that
    an Alertmanager accepted, or that every Alertmanager has let end by itself by now."""
    counts = {"firing": 0, "resolved": 0, "failed": 0}
    by_urls: dict[tuple[str, ...], list[_Entry]] = {}
    for entry in entries:
        by_urls.setdefault(entry.urls, []).append(entry)
    forget = connection.register_script(_FORGET)
    for urls, found in by_urls.items():
        for start in range(0, len(found), CHUNK):
            chunk = found[start : start + CHUNK]
            alerts = [ending(entry.alert, entry.ended if entry.ended is not None
                             else now + LIFETIME_SECONDS) for entry in chunk]  # fmt: skip
            kind = "resolved" if all(entry.ended is not None for entry in chunk) else "refresh"
            result = post(urls, alerts, settings.http_timeout, kind)
            if not result.ok:
                counts["failed"] += len(chunk)
                logs.log(log, "alertmanager.refresh_failed", logging.WARNING,
                         alerts=len(chunk), error=result.error)  # fmt: skip
            for entry in chunk:
                if entry.ended is None:
                    counts["firing"] += result.ok
                    continue
                if result.ok or now > entry.ended + LIFETIME_SECONDS:
                    forget(keys=[RECORDS, RESOLVED], args=[entry.gid, entry.raw])
                    counts["resolved"] += result.ok
    return counts


def resolve(connection: redis.Redis, gid: str, settings: Settings | None = None) -> bool:
    """Post the alert of group `gid`, which just closed, as resolved; True if accepted.

    Called by the flush that closed it; when that fails (or the flush died first), the next
    refresh posts it, since the close marked it in Redis."""
    settings = settings or current()
    now = time.time()
    entries = [entry for entry in _entries(connection, now, [gid]) if entry.ended is not None]
    if not entries:
        return False
    return _post_entries(connection, entries, settings, now)["resolved"] > 0


def sweep(connection: redis.Redis, settings: Settings | None = None,
          now: float | None = None) -> dict[str, int]:  # fmt: skip
    """Post every tracked alert again: the firing ones to stay firing, the resolved ones until
    accepted. Returns how many were posted firing, resolved, or failed."""
    settings = settings or current()
    now = time.time() if now is None else now
    return _post_entries(connection, _entries(connection, now), settings, now)


def _job_id() -> str:
    return f"wastatus-alertmanager-refresh-{new_id()}"


def _enqueue(connection: redis.Redis, job: str, delay: float) -> None:
    enqueue_once(get_queue(connection, ALERTS), REFRESH_JOB, job, job, at=time.time() + delay)


def ensure_refresh(connection: redis.Redis, delay: float = REFRESH_SECONDS) -> bool:
    """Schedule the refresh job unless one is; True if this call scheduled it."""
    job = _job_id()
    if not connection.set(REFRESH_KEY, job, nx=True, px=int(REFRESH_TOKEN_SECONDS * 1000)):
        return False
    _enqueue(connection, job, delay)
    return True


def refresh(job: str, connection: redis.Redis | None = None) -> str:
    """RQ job: post every tracked alert again, then schedule the next run while any is left.

    Only the job named in `REFRESH_KEY` runs, so a duplicate ends at once; the name expires,
    so a job lost with its worker is replaced by the next `ensure_refresh` (maintenance)."""
    connection = connection or job_connection()
    if connection.get(REFRESH_KEY) != job.encode():
        return "stale"
    try:
        counts = sweep(connection)
    finally:
        following = _job_id() if connection.hlen(RECORDS) else ""
        passed = connection.register_script(_PASS_ON)(
            keys=[REFRESH_KEY], args=[job, following, int(REFRESH_TOKEN_SECONDS * 1000)]
        )
        if passed and following:
            _enqueue(connection, following, REFRESH_SECONDS)
    return "refreshed: " + ", ".join(f"{key} {value}" for key, value in counts.items())


def recover(connection: redis.Redis) -> int:
    """Schedule the refresh job again, to run now, if alerts are tracked and no job is (its
    name expired: it was lost); 1 if it did. Late by then: it runs at once."""
    return int(bool(connection.hlen(RECORDS)) and ensure_refresh(connection, delay=0))
