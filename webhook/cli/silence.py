"""`wastatus silence add|list|expire`: keep known failures from alerting for a while."""

from __future__ import annotations

import datetime as dt
import getpass
import os
import time

import click
from rich.console import Console
from rich.table import Table

from webhook.cli.common import print_json, redis_or_exit, when
from workers.alerting import silences
from workers.settings import parse_duration


def _matchers(pairs: tuple[str, ...]) -> dict[str, object]:
    """`key=value` pairs; a comma-separated value or a repeated key means any of them."""
    found: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise click.BadParameter(f"{pair!r}: expected key=value, e.g. code=131049",
                                     param_hint="--match")  # fmt: skip
        values = [part.strip() for part in value.split(",") if part.strip()]
        found.setdefault(key.strip(), []).extend(values)
    return {key: values[0] if len(values) == 1 else values for key, values in found.items()}


def _values(values: object) -> str:
    return ",".join(map(str, values if isinstance(values, list) else [values]))


def _until(duration: str | None, until: str | None) -> float:
    if bool(duration) == bool(until):
        raise click.UsageError("give how long with --for (e.g. 2h) or an end with --until")
    if duration:
        try:
            return time.time() + parse_duration(duration)
        except ValueError:
            raise click.BadParameter(f"{duration!r}: use e.g. 90s, 30m, 2h or 1d",
                                     param_hint="--for") from None  # fmt: skip
    try:
        moment = dt.datetime.fromisoformat(until.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{until!r} is not an ISO-8601 time",
                                 param_hint="--until") from None  # fmt: skip
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


@click.group()
def silence() -> None:
    """Silences: matching failures are counted, not sent, until the silence ends."""


@silence.command()
@click.option(
    "--match",
    "pairs",
    multiple=True,
    required=True,
    metavar="KEY=VALUE",
    help=f"Matcher (repeatable): {', '.join(silences.rules.MATCHER_KEYS)}.",
)
@click.option("--for", "duration", help="How long, e.g. 2h, 30m, 1d.")
@click.option("--until", help="Until when, ISO-8601 (UTC unless it says otherwise).")
@click.option("--comment", default="", help="Why; shown in `silence list`.")
@click.option(
    "--created-by",
    default=lambda: os.environ.get("USER") or getpass.getuser(),
    show_default="$USER",
    help="Who asked for it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")  # fmt: skip
def add(pairs: tuple[str, ...], duration: str | None, until: str | None, comment: str,
        created_by: str, as_json: bool) -> None:  # fmt: skip
    """Silence failures that match every --match until --for/--until is over."""
    ends_at = _until(duration, until)
    try:
        created = silences.add(redis_or_exit(), _matchers(pairs), ends_at, comment, created_by)
    except silences.SilenceError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        print_json(created)
    else:
        click.echo(f"silence {created['id']} until {when(created['ends_at'])}")


@silence.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include expired silences kept in Redis.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_(show_all: bool, as_json: bool) -> None:
    """List the silences in force (from Redis and the rules file) and what they silenced."""
    connection = redis_or_exit()
    found = silences.active(connection)
    if show_all:
        current = {entry["id"] for entry in found}
        found += [entry for entry in silences.stored(connection) if entry["id"] not in current]
    if as_json:
        print_json(found)
        return
    if not found:
        click.echo("No silences in force.")
        return
    table = Table("id", "matchers", "until", "silenced", "comment", "by")
    for entry in found:
        matchers = " ".join(f"{key}={_values(values)}" for key, values in entry["matchers"].items())
        table.add_row(entry["id"], matchers, when(entry["ends_at"]), str(entry["silenced"]),
                      entry.get("comment") or "", entry.get("created_by") or "")  # fmt: skip
    Console().print(table)


@silence.command()
@click.argument("silence_id")
def expire(silence_id: str) -> None:
    """End a silence now (rules-file silences end by editing the file)."""
    if silence_id.startswith("rules-"):
        raise click.ClickException(f"{silence_id} comes from the rules file: edit the file")
    if not silences.expire(redis_or_exit(), silence_id):
        raise click.ClickException(f"no silence {silence_id}")
    click.echo(f"silence {silence_id} expired")
