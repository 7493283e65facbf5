"""`wastatus worker`: the RQ worker that enriches and routes failures."""

from __future__ import annotations

import click

from webhook.cli.common import redis_or_exit
from webhook.cli.rules import require_deliverable
from workers.runner import run_worker


@click.command()
@click.option("--burst", is_flag=True, help="Drain every queue, then exit.")
@click.option("--name", default=None, help="Worker name (default: RQ's own).")
def worker(burst: bool, name: str | None) -> None:
    """Run a worker on every wastatus queue (JSON serializer, with the scheduler)."""
    require_deliverable()
    run_worker(redis_or_exit(), burst=burst, name=name)
