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
from workers.alerting import groups, notifications, receivers, silences
from workers.health import tracker
from workers.jobs import decode_hash
from workers.logs import mask_phone
from workers.outcomes import deadletters, exports, funnels, stats, timelines
from workers.settings import Settings, format_duration, parse_duration

PAGE_SIZE = 25
PAGE_SIZE_MAX = 200
PREVIEW_EVENTS_MAX = 50_000
"""Kept events a silence preview reads at most over all open groups: past it, a group is
counted by its latest event (and the preview says it is an estimate)."""
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


def events_page(args: Mapping) -> dict:
    """`?page=N` or `?before=SEQ` (the events numbered below SEQ) and `?size=` (at most
    `PAGE_SIZE_MAX`) of a group's events, from a request's `args` (a MultiDict); what cannot
    be read is the default."""
    return {
        "page": args.get("page", 1, type=int) or 1,
        "before": args.get("before", type=int),
        "size": args.get("size", PAGE_SIZE, type=int) or PAGE_SIZE,
    }


def group(
    connection: redis.Redis,
    gid: str,
    settings: Settings,
    page: int = 1,
    before: int | None = None,
    size: int = PAGE_SIZE,
) -> dict | None:
    """An open group with a page of its kept events (newest first: page `page`, or the events
    numbered below `before`), its route, receivers, catalog entry, the silence that would cover
    it, and each of its notifications with its delivery state, newest first."""
    summary = open_group(connection, gid)
    if summary is None:
        return None
    state = decode_hash(connection.hgetall(groups.group_hash(gid)))
    meta = json.loads(state.get("meta") or "{}")
    size = min(max(1, size), PAGE_SIZE_MAX)
    listed = groups.events(connection, gid, size, (max(1, page) - 1) * size, before)
    events = [shown(item, settings) for item in listed["events"]]
    kept, total = listed["kept"], listed["total"]
    more = listed["start"] + len(events) < kept
    # the catalog's entry from the latest alert item (groups.submit keeps the latest first)
    latest = connection.lindex(groups.sample_key(gid), 0)
    sent = group_notifications(connection, gid, settings)
    return {
        **summary,
        "labels": meta.get("labels") or {},
        "receivers": meta.get("receivers") or [],
        "group_by": meta.get("group_by") or [],
        "events": events,
        "events_total": total,
        "events_kept": kept,
        "page": listed["start"] // size + 1,
        "pages": max(1, -(-kept // size)),
        "page_size": size,
        "older_before": events[-1]["seq"] if more and events else None,
        "older_not_kept": not more and total > kept,
        "catalog": _catalog(json.loads(latest) if latest else {}),
        "silence_matchers": silence_matchers(meta.get("labels") or {}),
        "notifications": sent,
        "notification": next((one for one in sent if not one["expired"]), None),
    }


def group_notifications(connection: redis.Redis, gid: str, settings: Settings) -> list[dict]:
    """Each notification of an open group, newest first, with where its delivery stands with
    each receiver of its route; one whose record has expired says so."""
    found = []
    for nid, record in notifications.of_group(connection, gid):
        if record is None:
            found.append({"id": nid, "expired": True})
            continue
        names = json.loads(record.get("chain") or "null")  # as its delivery resolved them
        if names is None:  # not tried yet: as this process would
            names = list(json.loads(record.get("meta") or "{}").get("receivers") or ())
            try:
                names = [receiver.name for receiver in receivers.chain(names, settings)]
            except receivers.ReceiverConfigError:
                names = names or ["(default)"]
        found.append({
            **delivery(nid, record),  # type: ignore[dict-item]
            "expired": False,
            "replay_of": record.get("replay_of"),
            "receivers": notifications.receiver_states(record, names),
        })  # fmt: skip
    return found


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
    """A notification's delivery state: pending, delivered (to whom) or dead, and its errors;
    `status` is its kind (firing, update, repeat: a reminder, resolved)."""
    if not nid or record is None:
        return None
    return {
        "id": nid,
        "status": record.get("status"),
        "count": int(record.get("count") or 0),
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


def _as_event(item: Mapping, labels: Mapping, latest: Mapping) -> dict:
    """A kept event (or an alert item) in the shape matchers read: what it lacks (api, waba_id,
    status, kind) from the group's latest event, its catalog fields from its code."""
    event = {k: v for k, v in labels.items() if k not in groups.MASKED_KEYS}
    event |= {key: latest.get(key) for key in ("api", "waba_id", "status", "kind")}
    event |= {key: value for key, value in item.items() if value is not None}
    if "category" in item:  # an alert item has its catalog fields
        event["catalog"] = {key: item.get(key) for key in ("category", "severity", "retry")}
    elif event.get("code") is not None:
        found = entry(event["code"], event.get("api"))
        event["catalog"] = {"category": found.category, "severity": found.severity,
                            "retry": {"policy": found.retry.policy}}  # fmt: skip
    return event


def _constant(group_by: list, matchers: Mapping) -> bool:
    """True when every event of a group has the same value for every key of `matchers`: the
    group's own fields, and the catalog's when the code is one of them."""
    same = set(group_by) | ({"category", "severity", "retry"} if "code" in group_by else set())
    return set(matchers) <= same


def preview(connection: redis.Redis, matchers: Mapping) -> dict:
    """How many events of the open groups `matchers` match, and which groups (raises
    SilenceError for matchers a silence would refuse).

    Matchers on what a group's events share count the whole group; others are evaluated
    against each kept event (WASTATUS_GROUP_EVENTS of a group, `PREVIEW_EVENTS_MAX` in all), and
    `kept_only` says when such a group had more events than it keeps: only kept ones counted;
    `estimated` when the reading budget ran out and a group was judged by its latest event."""
    normalized = silences.validate_matchers(matchers)
    matched, events, budget = [], 0, PREVIEW_EVENTS_MAX
    kept_only = estimated = False
    for found in groups.open_groups(connection):
        key = groups.group_hash(found["id"])
        meta = json.loads(connection.hget(key, "meta") or "{}")
        labels = meta.get("labels") or {}
        raw = connection.lindex(groups.sample_key(found["id"]), 0)
        latest = json.loads(raw) if raw else {}
        constant = _constant(meta.get("group_by") or [], normalized)
        if constant or budget <= 0:
            estimated = estimated or not constant
            if silences.matches(_as_event(latest, labels, latest), normalized):
                matched.append(found["id"])
                events += found["count"]
            continue
        listed = groups.events(connection, found["id"], budget)
        budget -= len(listed["events"])
        hits = sum(
            silences.matches(_as_event(item, labels, latest), normalized)
            for item in listed["events"]
        )
        # a group that kept fewer events than it had may match among those it did not keep
        kept_only = kept_only or listed["total"] > listed["kept"]
        if hits:
            matched.append(found["id"])
            events += hits
    return {
        "matchers": normalized,
        "groups": matched,
        "events": events,
        "kept_only": kept_only,
        "estimated": estimated,
    }


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
