"""`wastatus catalog`: every known error code as a table, or as a JSON list for scripts."""

from __future__ import annotations

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import catalog as error_catalog
from webhook.cli.common import print_json
from webhook.cli.explain import API_CHOICES, SEVERITY_STYLES, retry_label


@click.command(name="catalog")
@click.option("--api", type=click.Choice(API_CHOICES), help="Only this API's codes.")
@click.option("--category", type=click.Choice(error_catalog.CATEGORIES), help="Only this category.")
@click.option("--lang", type=click.Choice(["ja", "en"]), default="ja", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of entries.")
def catalog(api: str | None, category: str | None, lang: str, as_json: bool) -> None:
    """List the error catalog, optionally one API or one category."""
    found = error_catalog.entries(api=api, category=category)
    if as_json:
        print_json([entry.to_dict() for entry in found])
        return
    table = Table(title=f"{len(found)} codes", title_justify="left")
    for column in ("API", "Code", "Title", "Category", "Severity", "Retry"):
        table.add_column(column, no_wrap=column in ("API", "Code"))
    for entry in found:
        style = SEVERITY_STYLES[entry.severity]
        table.add_row(
            entry.api,
            str(entry.code),
            escape(entry.title),
            entry.category,
            f"[{style}]{entry.severity}[/{style}]",
            retry_label(entry.retry, lang),
        )
    Console().print(table)
