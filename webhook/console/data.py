"""What the console shows, as plain data: the pages render it, the JSON API returns it.

Everything is read through the modules that own it (groups, notifications, silences, dead
letters, quarantine, health, stats, the catalog); this module only gathers and shapes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import redis

import catalog
from webhook import quarantine, report
from workers.alerting import groups, notifications, silences
from workers.health import tracker
from workers.jobs import decode_hash
from workers.logs import mask_phone
from workers.outcomes import deadletters, exports, funnels, stats, timelines
from workers.settings import Settings, format_duration, parse_duration

PAGE_SIZE = 10
CHART_HOURS = 12


def overview(connection: redis.Redis, settings: Settings) -> dict:
    """`wastatus status`'s report, plus the failures by hour and category for the chart."""
    found = report.collect(connection, 3600, settings)
    found["chart"] = chart(connection)
    return found


def chart(connection: redis.Redis, hours: int = CHART_HOURS, now: float | None = None) -> dict:
    """Failures in each of the last `hours` UTC hours, by category (the catalog's)."""
    now = time.time() if now is None else now
    first = int(now // 3600) - hours + 1
    rows = []
    for hour in range(first, first + hours):
        by_category: dict[str, int] = {}
        # seconds=0 with `now` inside the hour reads that one hour's counts
        for row in stats.failures_since(connection, 0, now=hour * 3600 + 1):
            category = entry(row["code"], row["api"]).category
            by_category[category] = by_category.get(category, 0) + row["count"]
        rows.append({"hour": notifications.iso(hour * 3600), "by_category": by_category})
    return {"categories": list(catalog.CATEGORIES), "hours": rows}


def open_group(connection: redis.Redis, gid: str) -> dict | None:
    """One open group as `groups.open_groups` shows it, or None."""
    return next((found for found in groups.open_groups(connection) if found["id"] == gid), None)


def group(connection: redis.Redis, gid: str, settings: Settings, page: int = 1) -> dict | None:
    """An open group with its latest events (newest first, paged), its route, receivers,
    catalog entry, the silence that would cover it, and its last notification's delivery."""
    summary = open_group(connection, gid)
    if summary is None:
        return None
    state = decode_hash(connection.hgetall(groups.group_hash(gid)))
    meta = json.loads(state.get("meta") or "{}")
    # groups.submit keeps the latest SAMPLE_SIZE alert items, newest first
    sample = [
        json.loads(raw) for raw in connection.lrange(groups.group_hash(gid) + ":sample", 0, -1)
    ]
    events = [shown(item, settings) for item in sample]
    page = max(1, page)
    latest = events[0] if events else {}
    last = notifications.get(connection, state["last_nid"]) if state.get("last_nid") else None
    return {
        **summary,
        "labels": meta.get("labels") or {},
        "receivers": meta.get("receivers") or [],
        "group_by": meta.get("group_by") or [],
        "events": events[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
        "events_kept": len(events),
        "page": page,
        "pages": max(1, -(-len(events) // PAGE_SIZE)),
        "catalog": _catalog(latest),
        "silence_matchers": silence_matchers(meta.get("labels") or {}),
        "notification": delivery(state.get("last_nid"), last),
    }


def shown(item: Mapping, settings: Settings) -> dict:
    """An alert item with the recipient masked unless WASTATUS_LOG_PII (stored ones already are
    when it was off; masking is idempotent)."""
    item = dict(item)
    if item.get("recipient_id") and not settings.log_pii:
        item["recipient_id"] = mask_phone(item["recipient_id"])
    item["time"] = notifications.iso(item.get("timestamp"))
    return item


def _catalog(item: Mapping) -> dict | None:
    if item.get("kind") == "health":
        return {
            key: item.get(key) for key in ("title", "category", "severity", "explanation", "action")
        }
    if not item:
        return None
    return entry(item.get("code"), item.get("api")).to_dict()


def entry(code: object, api: str | None) -> catalog.Entry:
    """The catalog's entry; an api the catalog does not name (stats' "unknown") searches both."""
    try:
        return catalog.lookup(code, api=api or None)  # type: ignore[arg-type]
    except ValueError:
        return catalog.lookup(code)  # type: ignore[arg-type]


def delivery(nid: str | None, record: Mapping | None) -> dict | None:
    """A notification's delivery state: pending, delivered (to whom) or dead, and its errors."""
    if not nid or record is None:
        return None
    return {
        "id": nid,
        "status": record.get("status"),
        "state": record.get("state"),
        "delivered_to": record.get("delivered_to") or None,
        "attempt": int(record.get("attempt") or 0),
        "created_at": notifications.iso(record.get("created_at")),
        "finished_at": notifications.iso(record.get("finished_at")),
        "errors": json.loads(record.get("errors") or "[]"),
    }


def silence_matchers(labels: Mapping) -> dict:
    """The group's labels as silence matchers; masked phone numbers are left out (a masked
    value matches nothing)."""
    return {
        key: value
        for key, value in labels.items()
        if value not in (None, "") and key not in groups.MASKED_KEYS
    }


def _as_event(item: Mapping, labels: Mapping) -> dict:
    """An alert item in the shape matchers read (catalog fields under `catalog`)."""
    event = {**{k: v for k, v in labels.items() if k not in groups.MASKED_KEYS}, **item}
    event["catalog"] = {key: item.get(key) for key in ("category", "severity", "retry")}
    return event


def preview(connection: redis.Redis, matchers: Mapping) -> dict:
    """How many events of the open groups `matchers` match, and which groups (raises
    SilenceError for matchers a silence would refuse)."""
    normalized = silences.validate_matchers(matchers)
    matched, events = [], 0
    for found in groups.open_groups(connection):
        state = decode_hash(connection.hgetall(groups.group_hash(found["id"])))
        labels = json.loads(state.get("meta") or "{}").get("labels") or {}
        latest = connection.lindex(groups.group_hash(found["id"]) + ":sample", 0)
        item = json.loads(latest) if latest else {}
        if silences.matches(_as_event(item, labels), normalized):
            matched.append(found["id"])
            events += found["count"]
    return {"matchers": normalized, "groups": matched, "events": events}


def dead_letters(connection: redis.Redis) -> list[dict]:
    """Every dead letter, newest first, with when it was made as ISO time."""
    found = [entry.to_dict() for entry in deadletters.entries(connection)]
    for entry in found:
        entry["created"] = notifications.iso(entry["created_at"])
    return found[::-1]


def quarantined(connection: redis.Redis) -> list[dict]:
    """Every quarantined webhook's summary, newest first."""
    found = [entry.summary() for entry in quarantine.entries(connection)]
    for entry in found:
        entry["received"] = notifications.iso(entry["received_at"])
    return found[::-1]


def health(connection: redis.Redis) -> dict:
    return tracker.summary(connection)


def catalog_search(text: str, limit: int = 50) -> list[dict]:
    """Catalog entries whose code is `text` or whose words (ja or en) contain every word of it."""
    text = text.strip()
    if not text:
        return []
    code = catalog.parse_code(text)
    words = text.lower().split()
    found = []
    for entry in catalog.entries():
        if code is not None:
            hit = entry.code == code or code in entry.equivalent
        else:
            haystack = " ".join(
                (
                    entry.title,
                    entry.explanation.ja,
                    entry.explanation.en,
                    entry.action.ja,
                    entry.action.en,
                    entry.category,
                )
            ).lower()
            hit = all(word in haystack for word in words)
        if hit:
            found.append(entry.to_dict())
        if len(found) >= limit:
            break
    return found


SINCE_CHOICES = ("1h", "3h", "24h", "7d")


def funnel(connection: redis.Redis, settings: Settings, by: str, since: str) -> dict:
    """The funnel by `by` over the last `since` (a duration), each row with its top codes;
    ValueError when either cannot be read or `since` reaches past the funnels' retention."""
    if by not in funnels.DIMENSIONS:
        raise ValueError(f"by must be one of {', '.join(funnels.DIMENSIONS)}")
    seconds = parse_duration(since)
    if not 0 < seconds <= settings.funnel_retention:
        raise ValueError(
            f"since must be more than 0 and at most {format_duration(settings.funnel_retention)}"
        )
    rows = funnels.funnel(connection, by, seconds)
    for row in rows:
        row["top_codes"] = exports.top_codes(row["codes"], shown=3)
    return {"by": by, "since": seconds, "rows": rows}


def failed_recipients(connection: redis.Redis, settings: Settings, tracker: str) -> list[dict]:
    """A tracker's latest failed recipients, masked unless WASTATUS_LOG_PII."""
    entries = funnels.failed_recipients(connection, tracker)
    return exports.failed_rows(entries, settings.log_pii, lambda stamp: stamp)


def message(connection: redis.Redis, settings: Settings, wamid: str) -> dict | None:
    """The timeline of one message (tracking must be on: the caller checks), or None."""
    return timelines.timeline(connection, wamid, settings.track_messages)
