"""`wastatus health [--json]`: every known template, number and account, and the open problems."""

from __future__ import annotations

import click
import redis
from rich.console import Console
from rich.table import Table

import catalog
from webhook.cli.common import print_json, redis_or_exit
from workers.alerting.health_text import date, entity_label
from workers.health import tracker
from workers.settings import current

SEVERITY_STYLES = {"critical": "bold red", "error": "red", "warning": "yellow", "info": "green"}


def _state(state: dict) -> str:
    parts = []
    for key, value in state.items():
        if value is None or value == []:
            continue
        if key == "restrictions":
            value = ", ".join(f"{item.get('type')} until {date(item.get('expiration'))}"
                              for item in value if isinstance(item, dict))  # fmt: skip
        parts.append(f"{key}={value}")
    return "; ".join(parts)


def render(report: dict, console: Console, lang: str) -> None:
    """The report as rich tables, explanations in `lang`."""
    problems = report["open_problems"]
    if problems:
        table = Table("severity", "event", "entity", "since", "ends", title="Open health problems",
                      show_lines=True)  # fmt: skip
        table.add_column("what to do", overflow="fold")
        for problem in problems:
            style = SEVERITY_STYLES.get(problem["severity"], "")
            entry = catalog.health_lookup(problem["field"], problem["event"])
            table.add_row(f"[{style}]{problem['severity']}[/]",
                          f"{problem['field']}/{problem['event']}",
                          entity_label(problem.get("entity"), lang), date(problem["since"]) or "",
                          date(problem.get("ends")) or "", entry.action.get(lang))  # fmt: skip
        console.print(table)
    else:
        console.print("no open health problems")
    entities = report["entities"]
    if entities:
        table = Table("entity", "state", "last events", "updated", title="Known entities")
        for item in entities:
            events = ", ".join(f"{field}/{event}" for field, event in item["last_events"].items())
            table.add_row(entity_label(item["entity"], lang), _state(item["state"]), events,
                          date(item["updated_at"]) or "")  # fmt: skip
        console.print(table)
    else:
        console.print("no template, number or account has reported its health yet")


@click.command("health")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def health_command(as_json: bool) -> None:
    """Known templates, numbers and accounts with their state, and the open health problems."""
    connection = redis_or_exit()
    try:
        report = tracker.summary(connection)
    except redis.RedisError as error:
        raise click.ClickException(f"cannot read Redis: {error}") from None
    if as_json:
        print_json(report)
        return
    render(report, Console(), current().lang)
