"""The `wastatus` command: one click group, one module per command."""

from __future__ import annotations

import sys

import click

from webhook.cli import (
    catalog,
    console,
    dead,
    explain,
    funnel,
    health,
    message,
    quarantine,
    rules,
    serve,
    silence,
    status,
    up,
    worker,
)
from workers import settings


class SettingsFirst(click.Group):
    """A group whose commands start from validated settings: a bad one stops the command
    here (exit 2, one line per problem), not in a job later. `--help` needs no settings."""

    def invoke(self, ctx: click.Context):
        if not {"-h", "--help"} & set(ctx.args):
            try:
                settings.load()
            except settings.SettingsError as error:
                click.echo(error.report(), err=True, nl=False)
                sys.exit(2)
        return super().invoke(ctx)


@click.group(cls=SettingsFirst, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """wastatus: WhatsApp Business status webhooks, every failure explained and routed."""


main.add_command(up.up)
main.add_command(serve.serve)
main.add_command(worker.worker)
main.add_command(quarantine.quarantine)
main.add_command(explain.explain)
main.add_command(catalog.catalog)
main.add_command(rules.rules)
main.add_command(status.status)
main.add_command(health.health_command)
main.add_command(silence.silence)
main.add_command(dead.dead)
main.add_command(console.console)
main.add_command(funnel.funnel)
main.add_command(message.message)
