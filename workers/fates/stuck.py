"""Messages stuck in `sent`: with tracking on, a message sent and neither delivered, read nor
failed after `WASTATUS_STUCK_AFTER` (24 h) becomes a `stuck` event, grouped per phone number
and tracker into one alert that counts them and names the likely causes (docs/alerts.md).

The timelines keep a sorted set of the messages whose only news is `sent`, scored by when they
become stuck (`workers.outcomes.timelines.STUCK_DUE`); a `delivered`, `read` or `failed` takes
the message out. `scan` reads only what is due (ZRANGEBYSCORE with a limit), checks each
record once more, submits the stuck ones and removes them from the set: each message alerts
once, and the scan costs O(messages due), never a walk over all messages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time

import redis

from workers.alerting import groups
from workers.jobs import Lock
from workers.outcomes import ledger, timelines
from workers.routing.router import route
from workers.routing.rules import Route, Rules, current_rules
from workers.settings import Settings, current, format_duration

GROUP_BY = ("kind", "phone_number_id", "biz_opaque_callback_data")

SCAN_LIMIT = 5000
"""Messages handled per scan; more due wait for the next (a minute later)."""

CATALOG = {
    "title": "Stuck in sent",
    "category": "stuck",
    "severity": "warning",
    "known": True,
    "explanation": {
        "ja": "送信済み(sent)のまま配信されていません。受信者の端末がオフライン、受信者が"
              "ビジネスをブロック、または電話番号の変更が考えられます。Meta は 30 日以内に"
              "配信できなかったメッセージを破棄します。",
        "en": "Sent but never delivered: the recipient's phone may be offline, the recipient "
              "may have blocked the business, or changed phone. Meta drops messages it could "
              "not deliver within 30 days.",
    },
    "action": {
        "ja": "時間をおいて状況を確認し、重要な内容は別の経路(SMS、メール)でも届けてください。",
        "en": "Give it time; for what matters, reach the recipient another way (SMS, e-mail).",
    },
}  # fmt: skip


def _route(chosen: Route) -> Route:
    return dataclasses.replace(chosen, group_by=GROUP_BY)


def _event(found: dict, after: float, now: float) -> dict:
    wamid = found["message_id"]
    sent = next((s for s in found["statuses"] if s["status"] == "sent"), {})
    return {
        "kind": "stuck",
        "api": "cloud",
        "event_id": hashlib.sha256(f"stuck\x1f{wamid}".encode()).hexdigest()[:32],
        "message_id": wamid,
        "status": "sent",
        "code": None,
        "phone_number_id": found["phone_number_id"],
        "biz_opaque_callback_data": found["tracker"],
        "errors": [],
        "timestamp": sent.get("timestamp"),
        "received_at": now,
        "catalog": dict(CATALOG),
        "fate": {"after": format_duration(after), "sent_at": sent.get("timestamp")},
    }


def still_sent(found: dict) -> bool:
    """True when nothing beyond `sent` (or a warning) arrived for the message."""
    return all(status["status"] in ("sent", "warning") for status in found["statuses"])


def scan(
    connection: redis.Redis,
    settings: Settings | None = None,
    rules: Rules | None = None,
    now: float | None = None,
) -> int:
    """Alert the messages that became stuck by `now`; returns how many."""
    settings = settings or current()
    if settings.track_messages <= 0:
        return 0
    lock = Lock(connection, "fates:stuck", seconds=120)
    if not lock.acquire():
        return 0
    try:
        now = time.time() if now is None else now
        due = connection.zrangebyscore(timelines.STUCK_DUE, "-inf", now, start=0, num=SCAN_LIMIT)
        if not due:
            return 0
        wamids = [timelines.wamid_of(member) for member in due]
        found = timelines.timelines(connection, wamids, settings.track_messages, now)
        events = [_event(found[wamid], settings.stuck_after, now)
                  for wamid in wamids if wamid in found and still_sent(found[wamid])]  # fmt: skip
        if events:
            _submit(connection, events, rules or current_rules(), settings)
        connection.zrem(timelines.STUCK_DUE, *due)
        return len(events)
    finally:
        lock.release()


def _submit(connection: redis.Redis, events: list[dict], rules: Rules, settings: Settings) -> None:
    taken = [_route(chosen) for chosen in route(events[0], rules) if chosen.action == "alert"]
    if not taken:
        ledger.record(connection, "dropped", [event["event_id"] for event in events])
        return
    for chosen in taken:
        groups.submit(connection, events, chosen, settings)
