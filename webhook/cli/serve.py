"""`wastatus serve`: the web app under granian (or gunicorn), as the Procfile runs it."""

from __future__ import annotations

import os
import shutil
import sys

import click

from workers.settings import current


@click.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=lambda: current().port,
    show_default="$PORT or 8000",
    help="Port to listen on.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 1024),
    default=lambda: current().web_concurrency,
    show_default="$WEB_CONCURRENCY or 2",
    help="Web server worker processes.",
)
def serve(host: str, port: int, workers: int) -> None:
    """Serve POST/GET /webhook with granian (WASTATUS_SERVER=gunicorn for gunicorn); refuses to
    run unauthenticated by accident."""
    settings = current()
    if not settings.authentication_configured and not settings.insecure:
        raise click.ClickException(
            "neither WASTATUS_APP_SECRET nor WASTATUS_ONPREM_TOKEN is set, so anyone could post "
            "webhooks; set one, or WASTATUS_INSECURE=1 to accept unauthenticated requests"
        )
    if settings.server == "granian":
        # A fresh interpreter: prometheus_client must be imported after its directory is set.
        os.execv(sys.executable, [sys.executable, "-m", "webhook.granian_server", "--host", host,
                                  "--port", str(port), "--workers", str(workers)])  # fmt: skip
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or "gunicorn"
    args = [
        gunicorn,
        "webhook:create_app()",
        "--config",
        "python:webhook.gunicorn_conf",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
    ]  # the graceful timeout and keep-alive are in webhook.gunicorn_conf
    os.execv(gunicorn, args)
