"""The service at a glance, read from Redis, as plain data: what `wastatus status` prints and
the console's overview shows.

Queues and workers say whether the service keeps up; the last hour's failures, explained from
the catalog, say what is failing and why; the last day's funnel says how messages fare; open
alert groups, silences, the quarantine and the dead letters say what waits for a person.
"""

from __future__ import annotations

import datetime as dt

import redis
from rq import Worker

import catalog
from webhook import quarantine
from workers import backlog, storage
from workers.alerting import groups, silences
from workers.health import tracker
from workers.outcomes import deadletters, funnels, stats
from workers.settings import Settings


def iso(value: dt.datetime | float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat(timespec="seconds")


def _workers(connection: redis.Redis) -> list[dict]:
    found = []
    for worker in Worker.all(connection=connection):
        found.append({
            "name": worker.name,
            "hostname": worker.hostname,
            "pid": worker.pid,
            "state": worker.get_state(),
            "queues": worker.queue_names(),
            "current_job": worker.get_current_job_id(),
            "birth": iso(worker.birth_date),
            "last_heartbeat": iso(worker.last_heartbeat),
            "successful_jobs": worker.successful_job_count,
            "failed_jobs": worker.failed_job_count,
        })  # fmt: skip
    return sorted(found, key=lambda worker: worker["name"])


def _failures(connection: redis.Redis, seconds: float) -> list[dict]:
    rows = []
    for row in stats.failures_since(connection, seconds):
        entry = catalog.lookup(row["code"], api=row["api"] or None).to_dict()
        rows.append({
            **row,
            "title": entry["title"],
            "category": entry["category"],
            "severity": entry["severity"],
            "retry": entry["retry"]["policy"],
            "known": entry["known"],
            "explanation": entry["explanation"],
            "action": entry["action"],
        })  # fmt: skip
    return rows


def collect(connection: redis.Redis, seconds: float, settings: Settings | None = None) -> dict:
    """Everything `status` shows, as plain data; raises RedisError."""
    queue_states = backlog.queue_states(connection)
    return {
        "generated_at": iso(dt.datetime.now(dt.UTC)),
        "inbox": {
            "waiting": backlog.queue_lengths(connection)["inbox"],
            "claimed_batches": backlog.claimed_batches(connection),
        },
        "resends": backlog.resends(connection),
        "queues": [{"name": name, **states} for name, states in queue_states.items()],
        "workers": _workers(connection),
        "failures": {"window_seconds": seconds, "by_code": _failures(connection, seconds)},
        "alert_groups": groups.open_groups(connection),
        "silences": silences.active(connection, settings),
        "quarantine": quarantine.size(connection),
        "dead_letters": deadletters.count(connection),
        "redis_memory": storage.memory(connection),
        "health": _health(connection),
        "funnel": funnel(connection),
    }


def _health(connection: redis.Redis) -> dict:
    """A short health section: open problems by severity and the worst few (`wastatus health`)."""
    problems = tracker.open_problems(connection, prune=False)
    by_severity: dict[str, int] = {}
    for problem in problems:
        by_severity[problem["severity"]] = by_severity.get(problem["severity"], 0) + 1
    shown = [{key: problem.get(key) for key in ("field", "event", "severity", "entity", "ends")}
             for problem in problems[:5]]  # fmt: skip
    return {"open": len(problems), "by_severity": by_severity, "problems": shown}


FUNNEL_WINDOW = 86400.0
FUNNEL_CODES = 5
"""Failure codes the status's funnel section names (the most frequent)."""


def funnel(connection: redis.Redis, seconds: float = FUNNEL_WINDOW) -> dict:
    """All messages' funnel over the last `seconds` (24 h): each status's count, messages,
    the failure rate and the most frequent failure codes, explained (`wastatus funnel` has
    it by tracker, phone number or category)."""
    totals = dict.fromkeys(funnels.SLOTS, 0)
    codes: dict[str, int] = {}
    for row in funnels.funnel(connection, "phone", seconds):  # every status has one phone value
        for name in funnels.SLOTS:
            totals[name] += row[name]
        for code, count in row["codes"].items():
            codes[code] = codes.get(code, 0) + count
    messages = totals["sent"] + totals["failed"] - totals["sent_failed"]
    top = sorted(codes.items(), key=lambda pair: (-pair[1], pair[0]))[:FUNNEL_CODES]
    return {
        "window_seconds": seconds,
        **{name: totals[name] for name in funnels.STATUSES},
        "messages": messages,
        "failure_rate": round(totals["failed"] / messages, 4) if messages else 0.0,
        "codes": [_code(code, count) for code, count in top],
    }


def _code(code: str, count: int) -> dict:
    entry = catalog.lookup(code, api="cloud").to_dict()  # never raises: a guess is not known
    return {"code": code, "count": count, "title": entry["title"], "known": entry["known"]}
