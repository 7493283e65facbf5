"""`wastatus message WAMID`: every status of one message, and its state by rules."""

from __future__ import annotations

import click

from webhook.cli.common import print_json, redis_or_exit, when
from workers import settings
from workers.outcomes import timelines


@click.command()
@click.argument("wamid")
@click.option(
    "--lang",
    type=click.Choice(["ja", "en"]),
    default=None,
    help="Language of the error explanations (WASTATUS_LANG).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def message(wamid: str, lang: str | None, as_json: bool) -> None:
    """The timeline of message WAMID (with WASTATUS_TRACK_MESSAGES on): each status with
    Meta's time and its arrival, errors explained, pricing, and the state it resolves to."""
    current = settings.current()
    if current.track_messages <= 0:
        raise click.ClickException(
            "message tracking is off: set WASTATUS_TRACK_MESSAGES (72h, say) on the web server"
        )
    found = timelines.timeline(redis_or_exit(), wamid, current.track_messages)
    if found is None:
        if as_json:
            print_json(None)
        raise click.ClickException(
            f"no status of {wamid} is kept (tracked for "
            f"{settings.format_duration(current.track_messages)})"
        )
    if as_json:
        print_json(found)
        return
    lang = lang or current.lang
    click.echo(f"{found['message_id']}")
    click.echo(f"  state: {found['state']}")
    click.echo(
        f"  phone number id: {found['phone_number_id'] or '-'}   "
        f"tracker: {found['tracker'] or '-'}   pricing: {found['pricing'] or '-'}"
    )
    for status in found["statuses"]:
        late = status["arrived"] - status["timestamp"]
        click.echo(f"  {status['status']:<9} {when(status['timestamp'])}  "
                   f"(arrived {'+' if late >= 0 else ''}{late}s)")  # fmt: skip
        error = status.get("error")
        if error:
            click.echo(f"            {status['code']} {error['title']}")
            click.echo(f"            {(error.get('explanation') or {}).get(lang, '')}")
            click.echo(f"            → {(error.get('action') or {}).get(lang, '')}")
