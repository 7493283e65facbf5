"""`wastatus rules check|test`: validate a routing rules file; show where an event goes."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from webhook.cli.common import print_json
from webhook.payload import read_document
from workers import preflight
from workers.health import tracker
from workers.inbox.enrich import enrich
from workers.inbox.intake import event_id
from workers.resend.schedule import min_delay
from workers.routing.router import route
from workers.routing.rules import Route, Rules, RulesError, load_rules
from workers.settings import current


@click.group()
def rules() -> None:
    """Routing rules (WASTATUS_RULES): which failures alert, resend or drop."""


def _load(path: str | None) -> Rules:
    """The rules of `path` (None: the configured ones); exits 2 if unreadable, 1 if invalid."""
    try:
        return load_rules(path)
    except RulesError as error:
        _refuse(error.source, error.problems, 2 if error.unreadable else 1)


def _refuse(source: str, problems: list[str], code: int) -> NoReturn:
    console = Console(stderr=True)
    console.print(f"[bold red]{source}[/]: {len(problems)} problem(s)", highlight=False)
    for problem in problems:
        console.print(f"  [red]✗[/] {problem}", markup=True, highlight=False)
    sys.exit(code)


def require_deliverable() -> None:
    """Exit 2 unless the configured rules load and pass the delivery check (for `worker`)."""
    try:
        loaded = load_rules()
    except RulesError as error:
        _refuse(error.source, error.problems, 2)
    found = preflight.problems(loaded, current())
    if found:
        _refuse(loaded.source, found, 2)


def _describe(chosen: Route) -> str:
    if chosen.action == "alert":
        receivers = ", ".join(chosen.receivers) or "default receivers"
        return (
            f"to {receivers}; group by {', '.join(chosen.group_by)}; wait {chosen.group_wait:g}s,"
            f" interval {chosen.group_interval:g}s, repeat {chosen.repeat_interval:g}s"
        )
    if chosen.action == "retry" and chosen.retry is not None:
        s = chosen.retry
        return (
            f"{s.attempts} attempts, backoff from {s.base_delay:g}s to {s.max_delay:g}s,"
            f" {s.jitter} jitter"
        )
    return ""


@rules.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def check(file: str, as_json: bool) -> None:
    """Validate FILE and what delivery needs; exit 1 naming each problem, 2 if unreadable."""
    loaded = _load(file)
    found = preflight.problems(loaded, current())
    if found:
        _refuse(loaded.source, found, 1)
    if as_json:
        print_json(
            {
                "valid": True,
                "source": loaded.source,
                "resend_enabled": loaded.resend_enabled,
                "routes": [r.to_dict() for r in loaded.routes],
                "fallback": [r.to_dict() for r in loaded.fallback],
                "silences": list(loaded.silences),
                "receivers": [r.get("name") for r in loaded.receivers],
            }
        )
        return
    console = Console()
    counts = (len(loaded.routes), len(loaded.silences), len(loaded.receivers))
    console.print("[green]✓[/] {} is valid: {} route(s), {} silence(s), {} receiver(s)".format(
        file, *counts))  # fmt: skip
    table = Table("#", "name", "matchers", "action", "continue", "details")
    every = [(str(i), r) for i, r in enumerate(loaded.routes)]
    every += [("fallback", r) for r in loaded.fallback]
    for index, chosen in every:
        matchers = " ".join(f"{k}={','.join(map(str, v))}" for k, v in chosen.matchers) or "*"
        table.add_row(
            index, chosen.name, matchers, chosen.action, "yes" if chosen.continue_ else "",
            _describe(chosen),
        )  # fmt: skip
    console.print(table)
    if not loaded.resend_enabled:
        console.print("WASTATUS_RETRY_URL is not set: retry routes alert instead.")


def read_events(path: str) -> list[dict]:
    """Normalized events from EVENT.json: one event, a list of them, or a raw webhook body."""
    document: Any = json.loads(Path(path).read_bytes())
    if isinstance(document, dict) and "errors" in document and "kind" in document:
        document = [document]
    if isinstance(document, list) and all(isinstance(item, dict) for item in document):
        return [{**event, "event_id": event.get("event_id") or event_id(event)}
                for event in document]  # fmt: skip
    reading = read_document(document, time.time())
    if not reading.events and reading.problems:
        raise click.ClickException(f"{path}: " + "; ".join(reading.problems))
    return reading.events


def _advice(result: dict) -> str:
    if result.get("effect"):  # a health event: a problem alerts, the rest are counted
        return result["effect"] if result["routes"] else f"{result['effect']}, counted, not alerted"
    return f"retry {result['retry_policy']}"


def _health_result(event: dict, loaded: Rules) -> dict:
    """What `rules test` shows for a health event: its entry and, for a problem, its routes."""
    enriched = tracker.enrich(event)
    entry = enriched["catalog"]
    taken = route(enriched, loaded) if entry["effect"] == "problem" else []
    taken = [tracker.health_route(one) if one.action == "alert" else one for one in taken]
    return {
        "event_id": enriched["event_id"],
        "api": "cloud",
        "code": f"{enriched['field']}/{enriched['event']}",
        "title": entry["title"],
        "category": entry["category"],
        "severity": entry["severity"],
        "retry_policy": None,
        "effect": entry["effect"],
        "first_resend_after": None,
        "routes": [chosen.to_dict() for chosen in taken],
    }


@rules.command("test")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("event_file", metavar="EVENT.json", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def test_(file: str, event_file: str, as_json: bool) -> None:
    """Print the route(s) each failure in EVENT.json takes under FILE."""
    loaded = _load(file)
    try:
        events = read_events(event_file)
    except ValueError as error:
        raise click.ClickException(f"{event_file}: not JSON ({error})") from None
    results = []
    for event in events:
        if event.get("kind") == "health":
            results.append(_health_result(event, loaded))
            continue
        enriched = enrich(event)
        taken = route(enriched, loaded)
        results.append(
            {
                "event_id": enriched["event_id"],
                "api": enriched.get("api"),
                "code": enriched["code"],
                "title": enriched["catalog"]["title"],
                "category": enriched["catalog"]["category"],
                "severity": enriched["catalog"]["severity"],
                "retry_policy": enriched["catalog"]["retry"]["policy"],
                "first_resend_after": min_delay(enriched),
                "routes": [chosen.to_dict() for chosen in taken],
            }
        )
    if as_json:
        print_json(results)
        return
    if not results:
        click.echo("No failure in this file: nothing would be routed.")
        return
    console = Console()
    for result in results:
        console.print(
            f"[bold]{result['api']} {result['code']}[/] {result['title']} "
            f"([cyan]{result['category']}[/], {result['severity']}, "
            f"{_advice(result)})",
            highlight=False,
        )
        for chosen in result["routes"]:
            detail = _describe(Route.from_dict(chosen))
            if chosen["action"] == "retry" and result["first_resend_after"]:
                detail += f"; first resend after {result['first_resend_after']:g}s (catalog)"
            console.print(f"  → [green]{chosen['name']}[/]: {chosen['action']} {detail}",
                          highlight=False)  # fmt: skip
