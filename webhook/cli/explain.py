"""`wastatus explain CODE`: what an error code means and what to do, as a card or as JSON."""

from __future__ import annotations

import click
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

import catalog
from catalog import Entry, HealthEntry, Retry
from catalog.health import parse_key
from webhook.cli.common import print_json

API_CHOICES = ["cloud", "on-premises", "on_premises"]

LABELS = {
    "ja": {
        "explanation": "説明",
        "action": "対応",
        "category": "分類",
        "severity": "重要度",
        "retry": "再送",
        "equivalent": "対応コード",
        "doubt": "注意",
        "guess": "カタログにないコードです(範囲からの推定)",
        "deprecated": "廃止されたコード",
        "effect": "種別",
        "unknown_event": "カタログにない値です",
    },
    "en": {
        "explanation": "Meaning",
        "action": "Action",
        "category": "Category",
        "severity": "Severity",
        "retry": "Retry",
        "equivalent": "Equivalent",
        "doubt": "Doubt",
        "guess": "Not in the catalog (guessed from the code's range)",
        "deprecated": "Deprecated code",
        "effect": "Effect",
        "unknown_event": "Not in the catalog",
    },
}
SEVERITY_STYLES = {"critical": "bold red", "error": "red", "warning": "yellow", "info": "green"}


def retry_label(retry: Retry, lang: str = "en") -> str:
    """A short human form of a retry policy: "never", "after 24 h", "immediate"."""
    if retry.policy == "never":
        return "しない" if lang == "ja" else "never"
    if retry.policy == "immediate":
        return "すぐに可" if lang == "ja" else "immediate"
    delay = _duration(retry.min_delay_seconds or 0, lang)
    return f"{delay}以上あけて" if lang == "ja" else f"after {delay}"


def _duration(seconds: int, lang: str) -> str:
    units = (
        (("時間", 3600), ("分", 60), ("秒", 1))
        if lang == "ja"
        else ((" h", 3600), (" min", 60), (" s", 1))
    )
    for unit, size in units:
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}{units[-1][0]}"


def _card_grid(entry: Entry | HealthEntry, lang: str, notes: list[str]) -> Table:
    """The rows every card starts with: notes in italics, what happened, what to do, the
    category and the severity."""
    labels = LABELS[lang]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    # Japanese has no spaces to wrap at: fold long lines instead of cutting them short.
    grid.add_column(overflow="fold")
    for note in notes:
        grid.add_row("", f"[italic]{note}[/italic]")
    grid.add_row(labels["explanation"], escape(entry.explanation.get(lang)))
    grid.add_row(labels["action"], escape(entry.action.get(lang)))
    grid.add_row(labels["category"], entry.category)
    style = SEVERITY_STYLES[entry.severity]
    grid.add_row(labels["severity"], f"[{style}]{entry.severity}[/{style}]")
    return grid


def render_card(entry: Entry, lang: str) -> Panel:
    """A rich panel with everything a person needs about one code."""
    labels = LABELS[lang]
    notes = [labels["guess"]] if not entry.known else []
    if entry.deprecated:
        notes.append(labels["deprecated"])
    grid = _card_grid(entry, lang, notes)
    grid.add_row(labels["retry"], f"{retry_label(entry.retry, lang)} ({escape(entry.retry.why)})")
    if entry.equivalent:
        other = "on_premises" if entry.api == "cloud" else "cloud"
        codes = ", ".join(str(code) for code in entry.equivalent)
        grid.add_row(labels["equivalent"], f"{other}: {codes}")
    if entry.doubt:
        grid.add_row(labels["doubt"], escape(entry.doubt))
    grid.add_row("", escape(entry.href))
    code = entry.code if entry.code is not None else "?"
    return Panel(grid, title=f"{entry.api} {code} · {escape(entry.title)}", title_align="left")


def render_health_card(entry: HealthEntry, lang: str) -> Panel:
    """A rich panel for one health event (field/EVENT)."""
    labels = LABELS[lang]
    grid = _card_grid(entry, lang, [labels["unknown_event"]] if not entry.known else [])
    grid.add_row(labels["effect"], f"{entry.effect} ({entry.entity})")
    if entry.doubt:
        grid.add_row(labels["doubt"], escape(entry.doubt))
    for source in entry.source:
        grid.add_row("", escape(source))
    return Panel(grid, title=f"{escape(entry.key)} · {escape(entry.title)}", title_align="left")


@click.command()
@click.argument("code")
@click.option("--api", type=click.Choice(API_CHOICES), help="Which API sent the code.")
@click.option("--lang", type=click.Choice(["ja", "en"]), default="ja", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the entry as JSON for scripts.")
def explain(code: str, api: str | None, lang: str, as_json: bool) -> None:
    """Explain an error CODE, or a health event as FIELD/EVENT (account_update/DISABLE)."""
    health = parse_key(code)
    if health is not None:
        found = catalog.health_lookup(*health)
        if as_json:
            print_json(found.to_dict())
        else:
            Console().print(render_health_card(found, lang))
        return
    entry = catalog.lookup(code, api)
    if as_json:
        print_json(entry.to_dict())
        return
    Console().print(render_card(entry, lang))
