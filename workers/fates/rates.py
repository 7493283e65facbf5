"""The tracker failure-rate rule: a campaign whose messages fail too often alerts.

`check` (run by every worker's maintenance, under a lock so that one worker acts) reads the
tracker funnel over `WASTATUS_FUNNEL_ALERT_WINDOW`. A tracker with at least
`WASTATUS_FUNNEL_ALERT_MIN` messages of which `WASTATUS_FUNNEL_ALERT_RATE` percent or more
failed opens a problem (messages: those that reported sent or failed, one that reported both
counted once, `funnels.SLOTS` `sent_failed`: by its timeline with message tracking on, by
`workers.fates.marks` without; docs/operations.md, 6b): an event of kind `funnel`
("campaign spring-sale: 23% failed, mostly 131049"), explained from the catalog by its most
frequent code and routed by the rules like a failure of that code, grouped per tracker. The
problem stays open (it is not sent again) until the rate falls below the threshold, when its
groups close with a `resolved` notification, as a health problem's do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time

import redis

from workers.alerting import groups
from workers.inbox.enrich import enrich
from workers.jobs import Lock
from workers.outcomes import funnels, ledger
from workers.routing.router import route
from workers.routing.rules import Route, Rules, current_rules
from workers.settings import Settings, current, format_duration

OPEN = "wastatus:fates:rates:open"
"""Hash tracker → JSON of its open problem (its groups, since when)."""

GROUP_BY = ("kind", "biz_opaque_callback_data")


def _route(chosen: Route) -> Route:
    return dataclasses.replace(chosen, group_by=GROUP_BY)


def _event(row: dict, settings: Settings, now: float, resolved: bool = False) -> dict:
    codes = row["codes"]
    top = int(next(iter(codes))) if codes else None
    tracker = row["tracker"]
    fate = {
        "tracker": tracker,
        "failed": row["failed"],
        "messages": row["messages"],
        "rate": round(row["failure_rate"], 4),
        "codes": dict(list(codes.items())[:5]),
        "window": format_duration(settings.funnel_alert_window),
    }
    seed = f"funnel\x1f{tracker}\x1f{now:.3f}\x1f{resolved}"
    event = {
        "kind": "funnel",
        "api": "cloud",
        "event_id": hashlib.sha256(seed.encode()).hexdigest()[:32],
        "status": "resolved" if resolved else "failed",
        "biz_opaque_callback_data": tracker,
        "errors": [{"code": top}] if top is not None else [],
        "timestamp": int(now),
        "received_at": now,
        "fate": fate,
    }
    return enrich(event)


def check(
    connection: redis.Redis,
    settings: Settings | None = None,
    rules: Rules | None = None,
    now: float | None = None,
) -> dict[str, list[str]]:
    """Open a problem for each tracker over the threshold, resolve those back under it."""
    settings = settings or current()
    done: dict[str, list[str]] = {"fired": [], "resolved": []}
    if settings.funnel_alert_rate <= 0:
        return done
    lock = Lock(connection, "fates:rates", seconds=60)
    if not lock.acquire():
        return done
    try:
        now = time.time() if now is None else now
        rules = rules or current_rules()
        threshold = settings.funnel_alert_rate / 100
        rows = funnels.funnel(connection, "tracker", settings.funnel_alert_window, now)
        found = {row["tracker"]: row for row in rows if row["tracker"] not in ("-", "(other)")}
        opened = {
            key.decode(): json.loads(value) for key, value in connection.hgetall(OPEN).items()
        }
        for tracker, row in found.items():
            over = row["messages"] >= settings.funnel_alert_min and row["failure_rate"] >= threshold
            if over and tracker not in opened and _fire(connection, row, rules, settings, now):
                done["fired"].append(tracker)
        for tracker, problem in opened.items():
            row = found.get(tracker) or {"tracker": tracker, "failed": 0, "messages": 0,
                                         "failure_rate": 0.0, "codes": {}}  # fmt: skip
            if row["failure_rate"] < threshold:
                _resolve(connection, problem, _event(row, settings, now, resolved=True), now)
                connection.hdel(OPEN, tracker)
                done["resolved"].append(tracker)
    finally:
        lock.release()
    return done


def _fire(connection: redis.Redis, row: dict, rules: Rules, settings: Settings, now: float) -> bool:
    event = _event(row, settings, now)
    taken = [_route(chosen) for chosen in route(event, rules) if chosen.action == "alert"]
    if not taken:
        ledger.record(connection, "dropped", [event["event_id"]])
        return False
    gids = []
    for chosen in taken:
        groups.submit(connection, [event], chosen, settings)
        gids.append(groups.group_id(groups.group_label(event, chosen)))
    record = {"since": now, "gids": gids, "rate": row["failure_rate"]}
    connection.hset(OPEN, row["tracker"], json.dumps(record))
    return True


def _resolve(connection: redis.Redis, problem: dict, recovery: dict, now: float) -> None:
    for gid in problem.get("gids", []):
        groups.close(connection, gid, recovery, now)


def open_problems(connection: redis.Redis) -> dict[str, dict]:
    """Trackers whose failure rate is alerting now, with their problem records."""
    return {key.decode(): json.loads(value) for key, value in connection.hgetall(OPEN).items()}
