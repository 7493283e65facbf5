"""`wastatus quarantine list|show|replay`: webhooks kept because they failed validation."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from webhook import quarantine as store
from webhook.cli.common import print_json, redis_or_exit, when
from workers.settings import current


@click.group()
def quarantine() -> None:
    """Webhooks that were authenticated but not valid, kept whole for replay."""


@quarantine.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_(as_json: bool) -> None:
    """List the quarantined webhooks, oldest first."""
    entries = store.entries(redis_or_exit())
    if as_json:
        print_json([entry.summary() for entry in entries])
        return
    if not entries:
        click.echo("The quarantine is empty.")
        return
    table = Table("id", "received", "auth", "size", "first problem")
    for entry in entries:
        first = entry.problems[0] if entry.problems else ""
        table.add_row(entry.id, when(entry.received_at), entry.auth, str(len(entry.body)), first)
    Console().print(table)


@quarantine.command()
@click.argument("entry_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def show(entry_id: str, as_json: bool) -> None:
    """Show one quarantined webhook: its problems and its body."""
    entry = store.get(redis_or_exit(), entry_id)
    if entry is None:
        raise click.ClickException(f"no quarantined webhook {entry_id}")
    if as_json:
        print_json(entry.to_dict())
        return
    click.echo(f"id        {entry.id}\nreceived  {when(entry.received_at)}\nauth      {entry.auth}")
    click.echo("problems")
    for problem in entry.problems:
        click.echo(f"  - {problem}")
    click.echo("body")
    click.echo(entry.body.decode("utf-8", "replace"))


@quarantine.command()
@click.argument("entry_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every quarantined webhook.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def replay(entry_ids: tuple[str, ...], replay_all: bool, as_json: bool) -> None:
    """Read quarantined webhooks again; store the valid ones' events and drop them."""
    connection = redis_or_exit()
    if replay_all == bool(entry_ids):
        raise click.UsageError("name the ids to replay, or give --all")
    if replay_all:
        entries = store.entries(connection)
    else:
        entries = [store.get(connection, entry_id) for entry_id in entry_ids]
        missing = [i for i, entry in zip(entry_ids, entries, strict=True) if entry is None]
        if missing:
            raise click.ClickException(f"no quarantined webhook {', '.join(missing)}")
    dedup = current().dedup_seconds
    results = [store.replay(connection, entry, dedup) for entry in entries]
    if as_json:
        print_json([result.to_dict() for result in results])
    else:
        for result in results:
            if result.replayed:
                click.echo(
                    f"{result.id}: replayed, {result.stored} events stored, "
                    f"{result.duplicates} already taken"
                )
            else:
                click.echo(f"{result.id}: still invalid: {'; '.join(result.problems[:3])}")
    if any(not result.replayed for result in results):
        raise SystemExit(1)
