"""`wastatus status [--json]`: the service at a glance (`webhook.report`), for people or scripts."""

from __future__ import annotations

from collections.abc import Mapping

import click
import redis
from rich.console import Console
from rich.table import Table

from webhook.cli.common import print_json, redis_or_exit
from webhook.report import collect, iso
from workers import backlog
from workers.settings import current, parse_duration


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

    _funnel(report["funnel"], console)

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
                          iso(silence.get("ends_at")) or "never", str(silence.get("silenced", 0)),
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


def _funnel(found: dict, console: Console) -> None:
    hours = found["window_seconds"] / 3600
    if not found["messages"] and not found["delivered"] and not found["read"]:
        console.print(f"funnel: no statuses in the last {hours:g} h")
        return
    counts = " · ".join(f"{name} {found[name]}" for name in ("sent", "delivered", "read", "failed"))
    noun = "message" if found["messages"] == 1 else "messages"
    failed = f"{found['failure_rate']:.1%} of {found['messages']} {noun} failed"
    console.print(f"funnel, last {hours:g} h: {counts} ({failed})")
    if found["codes"]:
        codes = ", ".join(f"{row['code']}×{row['count']} {row['title']}" for row in found["codes"])
        console.print(f"  top failure codes: {codes} (wastatus funnel)")


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
