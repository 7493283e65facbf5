"""`wastatus worker`: the RQ worker that enriches and routes failures."""

from __future__ import annotations

import click

from webhook.cli.rules import require_deliverable
from workers.connection import RedisNotConfigured, connect
from workers.runner import run_worker


@click.command()
@click.option("--burst", is_flag=True, help="Drain every queue, then exit.")
@click.option("--name", default=None, help="Worker name (default: RQ's own).")
def worker(burst: bool, name: str | None) -> None:
    """Run a worker on every wastatus queue (JSON serializer, with the scheduler).

    It waits for Redis when Redis is away, at start or later, for as long as it takes.
    """
    require_deliverable()
    try:
        connection = connect()
    except RedisNotConfigured as error:
        raise click.ClickException(str(error)) from None
    run_worker(connection, burst=burst, name=name)
