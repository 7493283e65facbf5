"""`wastatus status [--json]`: the service at a glance, read from Redis.

Queues and workers say whether the service keeps up; the last hour's failures, explained from
the catalog, say what is failing and why; open alert groups, silences, the quarantine and the
dead letters say what waits for a person.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import click
import redis
from rich.console import Console
from rich.table import Table
from rq import Worker

import catalog
from webhook import quarantine
from webhook.cli.common import print_json, redis_or_exit
from workers import backlog, storage
from workers.alerting import groups, silences
from workers.health import tracker
from workers.outcomes import deadletters, stats
from workers.settings import Settings, current, parse_duration


def _iso(value: dt.datetime | float | None) -> str | None:
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
            "birth": _iso(worker.birth_date),
            "last_heartbeat": _iso(worker.last_heartbeat),
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
        "generated_at": _iso(dt.datetime.now(dt.UTC)),
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


def _matchers(matchers: Mapping) -> str:
    def one(value: object) -> str:
        return "|".join(map(str, value)) if isinstance(value, list | tuple) else str(value)

    return ", ".join(f"{key}={one(value)}" for key, value in matchers.items())


def render(report: dict, console: Console, lang: str) -> None:
    """The report as rich tables, explanations in `lang`."""
    table = Table("queue", "queued", "started", "scheduled", "deferred", "failed", title="Queues")
    for queue in report["queues"]:
        table.add_row(queue["name"], *(str(queue[state]) for state in backlog.STATES))
    console.print(table)
    inbox = report["inbox"]
    console.print(f"inbox: {inbox['waiting']} events waiting, "
                  f"{inbox['claimed_batches']} batches being processed")  # fmt: skip
    resends = report["resends"]
    console.print(f"resends: {resends['due']} due now, {resends['later']} due later, "
                  f"{resends['in_flight']} being sent")  # fmt: skip

    if report["workers"]:
        table = Table("worker", "host", "pid", "state", "current job", "ok", "failed",
                      "last heartbeat", title="Workers")  # fmt: skip
        for worker in report["workers"]:
            table.add_row(worker["name"], worker["hostname"] or "", str(worker["pid"] or ""),
                          worker["state"], worker["current_job"] or "",
                          str(worker["successful_jobs"]), str(worker["failed_jobs"]),
                          worker["last_heartbeat"] or "")  # fmt: skip
        console.print(table)
    else:
        console.print("[bold red]no worker is running[/]: failures are stored but not processed")

    failures = report["failures"]
    hours = failures["window_seconds"] / 3600
    if failures["by_code"]:
        table = Table("api", "code", "count", "category", "retry",
                      title=f"Failures, last {hours:g} h", show_lines=True)  # fmt: skip
        table.add_column("what happened", overflow="fold")
        table.add_column("what to do", overflow="fold")
        for row in failures["by_code"]:
            code = str(row["code"]) if row["code"] is not None else "-"
            title = row["title"] + ("" if row["known"] else " (?)")
            table.add_row(row["api"], code, str(row["count"]), row["category"], row["retry"],
                          f"{title}\n{row['explanation'][lang]}", row["action"][lang])  # fmt: skip
        console.print(table)
    else:
        console.print(f"no failures in the last {hours:g} h")

    if report["alert_groups"]:
        table = Table("group", "receiver", "count", "first seen", "last seen", "next flush",
                      title="Open alert groups")  # fmt: skip
        for group in report["alert_groups"]:
            cells = ("group_key", "receiver", "count", "first_seen", "last_seen", "next_flush")
            table.add_row(*(str(group.get(cell) or "") for cell in cells))
        console.print(table)
    else:
        console.print("no open alert groups")

    if report["silences"]:
        table = Table("silence", "matchers", "until", "silenced", "comment", title="Silences")
        for silence in report["silences"]:
            table.add_row(str(silence.get("id")), _matchers(silence.get("matchers") or {}),
                          _iso(silence.get("ends_at")) or "never", str(silence.get("silenced", 0)),
                          str(silence.get("comment") or ""))  # fmt: skip
        console.print(table)
    else:
        console.print("no active silences")

    found = report["health"]
    if found["open"]:
        severities = ", ".join(f"{count} {name}" for name, count in found["by_severity"].items())
        console.print(f"health: {found['open']} open problems ({severities}; wastatus health)")
        for problem in found["problems"]:
            entity = problem.get("entity") or {}
            name = entity.get("name") or entity.get("id") or "?"
            console.print(f"  {problem['severity']}: {problem['field']}/{problem['event']} {name}")
    else:
        console.print("health: no open problems")

    quarantined, dead = report["quarantine"], report["dead_letters"]
    console.print(
        f"quarantine: {quarantined}" + (" (wastatus quarantine list)" if quarantined else "")
    )
    console.print(f"dead letters: {dead}" + (" (wastatus dead list)" if dead else ""))
    held = report["redis_memory"]
    limit = f"{held['max_bytes'] / 2**20:.0f} MiB" if held["max_bytes"] else "no limit"
    largest = ", ".join(f"{name} {size / 1024:.0f} KiB"
                        for name, size in list(held["largest"].items())[:3])  # fmt: skip
    console.print(f"redis memory: {held['used_bytes'] / 2**20:.1f} MiB of {limit}"
                  f" ({held['policy']}), {held['keys']} keys; largest: {largest}")  # fmt: skip


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--since", default="1h", show_default=True,
              help="Failures over this window (whole hours): 30m, 1h, 24h, …")  # fmt: skip
def status(as_json: bool, since: str) -> None:
    """Queues, workers, recent failures explained, alert groups, silences, quarantine."""
    try:
        seconds = parse_duration(since)
    except ValueError:
        raise click.BadParameter("use a duration: 30m, 1h, 24h", param_hint="--since") from None
    connection = redis_or_exit()
    try:
        report = collect(connection, seconds)
    except redis.RedisError as error:
        raise click.ClickException(f"cannot read Redis: {error}") from None
    if as_json:
        print_json(report)
        return
    render(report, Console(), current().lang)
