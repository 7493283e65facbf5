"""`wastatus dead list|replay`: what wastatus could not finish, for a person to look at."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from webhook.cli.common import print_json, redis_or_exit, when
from workers.outcomes import deadletters
from workers.replay import replay as replay_dead_letter


def _summary(entry: deadletters.DeadLetter) -> str:
    item = entry.item
    if entry.kind == "alert":
        alert = item.get("alert") or {}
        return f"{alert.get('group_key')} ×{alert.get('count')}"
    event = item.get("event", item)
    return f"{event.get('api')} {event.get('code')} {event.get('message_id') or ''}".strip()


@click.group()
def dead() -> None:
    """Dead letters: undeliverable alerts, exhausted resends and poison events."""


@dead.command("list")
@click.option("--kind", type=click.Choice(deadletters.KINDS), help="Only this kind.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_(kind: str | None, as_json: bool) -> None:
    """List the dead letters, oldest first."""
    found = deadletters.entries(redis_or_exit(), kind)
    if as_json:
        print_json([entry.to_dict() for entry in found])
        return
    if not found:
        click.echo("No dead letters.")
        return
    table = Table("id", "kind", "since", "what", "reason")
    table.columns[0].no_wrap = True  # ids are copied into `dead replay`
    for entry in found:
        table.add_row(entry.id, entry.kind, when(entry.created_at), _summary(entry),
                      entry.reason[:120])  # fmt: skip
    Console().print(table)


@dead.command()
@click.argument("dead_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def replay(dead_ids: tuple[str, ...], replay_all: bool, as_json: bool) -> None:
    """Send dead letters around again: alerts to their receivers, events to the inbox."""
    connection = redis_or_exit()
    if replay_all == bool(dead_ids):
        raise click.UsageError("name the ids to replay, or give --all")
    ids = [entry.id for entry in deadletters.entries(connection)] if replay_all else dead_ids
    done, missing = [], []
    for dead_id in ids:
        try:
            done.append(replay_dead_letter(connection, dead_id))
        except deadletters.UnknownDeadLetter:
            missing.append(dead_id)
    if as_json:
        print_json({"replayed": done, "missing": missing})
    else:
        for result in done:
            click.echo(f"{result['id']}: {result['kind']} requeued to {result['requeued']}")
        for dead_id in missing:
            click.echo(f"{dead_id}: no such dead letter", err=True)
    if missing:
        raise SystemExit(1)
