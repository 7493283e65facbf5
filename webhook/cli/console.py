"""`wastatus console hash-password`: a line for WASTATUS_CONSOLE_USERS, password never echoed."""

from __future__ import annotations

import click

from webhook.console.auth import hash_password


@click.group()
def console() -> None:
    """The web console at /console (README, "Console")."""


@console.command("hash-password")
@click.argument("user")
@click.password_option(help="Asked for (twice) when not given.")
def hash_password_command(user: str, password: str) -> None:
    """Print USER:HASH for WASTATUS_CONSOLE_USERS (comma-separate several users)."""
    if ":" in user or "," in user or not user.strip():
        raise click.BadParameter("a user name has no ':' nor ','", param_hint="USER")
    click.echo(f"{user}:{hash_password(password)}")
