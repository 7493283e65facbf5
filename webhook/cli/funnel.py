"""`wastatus funnel`: sent, delivered, read and failed counts by tracker, phone number or
pricing category; `wastatus funnel failed TRACKER`: that tracker's failed recipients as CSV."""

from __future__ import annotations

import sys

import click
from rich import box
from rich.console import Console
from rich.table import Table

from webhook.cli.common import print_json, redis_or_exit, when
from workers import settings
from workers.outcomes import exports, funnels

COLUMNS = ("sent", "delivered", "read", "played", "deleted", "failed")
SHORT = {"delivered": "deliv", "played": "play", "deleted": "del", "failed": "fail"}


def _since(_ctx, _param, value: str) -> float:
    try:
        return settings.parse_duration(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@click.group(invoke_without_command=True)
@click.option(
    "--by",
    type=click.Choice(funnels.DIMENSIONS),
    default="tracker",
    show_default=True,
    help="Count by tracker (biz_opaque_callback_data), phone number id or category.",
)
@click.option(
    "--since",
    default="24h",
    show_default=True,
    callback=_since,
    help="How far back (30m, 24h, 7d).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def funnel(ctx: click.Context, by: str, since: float, as_json: bool) -> None:
    """Delivery funnels: what became of the messages sent lately."""
    if ctx.invoked_subcommand is not None:
        return
    rows = funnels.funnel(redis_or_exit(), by, since)
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo(f"No statuses in the last {settings.format_duration(since)}.")
        return
    table = Table(by, *(SHORT.get(name, name) for name in COLUMNS), "fail%", "top codes",
                  box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))  # fmt: skip
    table.columns[0].overflow = "fold"
    table.columns[0].min_width = 16
    for column in table.columns[1:8]:
        column.justify = "right"
    for row in rows:
        table.add_row(row[by], *(str(row[name]) for name in COLUMNS),
                      f"{row['failure_rate']:.0%}", exports.top_codes(row["codes"]))  # fmt: skip
    Console(width=80 if not sys.stdout.isatty() else None).print(table)


@funnel.command()
@click.argument("tracker")
def failed(tracker: str) -> None:
    """The latest failed recipients of TRACKER as CSV (numbers masked unless WASTATUS_LOG_PII)."""
    entries = funnels.failed_recipients(redis_or_exit(), tracker)
    sys.stdout.write(exports.failed_csv(entries, settings.current().log_pii, when))
