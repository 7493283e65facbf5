"""`wastatus up`: the whole service in one command, for a first run or a small install.

It runs the web server and a worker and, when REDIS_URL is unset, a Redis of its own with
its data under WASTATUS_DATA_DIR. It owns every child: Ctrl-C, SIGTERM or a child dying
stops them all, Redis last, so no process outlives it.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from workers.redis_server import RedisServer
from workers.settings import REDIS_URL_FILE, current


def _persistent_token(path: Path) -> str:
    """A random token kept in `path`, so it survives restarts of `up`."""
    if path.is_file():
        return path.read_text().strip()
    token = secrets.token_urlsafe(24)
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """A child in a process group of its own, so stopping it reaches its children too
    (gunicorn's workers, RQ's work horse and scheduler) and a terminal's Ctrl-C reaches
    only `up`, which then stops everything in order."""
    return subprocess.Popen(args, env=env, start_new_session=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(children: list[subprocess.Popen], timeout: float = 25.0) -> None:
    """SIGTERM every child's group, wait until each group is empty, SIGKILL what is left."""
    for child in children:
        if _group_alive(child.pid):
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        while time.monotonic() < deadline and (child.poll() is None or _group_alive(child.pid)):
            time.sleep(0.05)
        if _group_alive(child.pid):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


@click.command()
@click.option("--port", type=int, default=8000, show_default=True, help="Web server port.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (put a TLS proxy in front for Meta).",
)
def up(port: int, host: str) -> None:
    """Run the web server, a worker and (without REDIS_URL) an embedded Redis."""
    env = dict(os.environ)
    data_dir = current().data_path
    data_dir.mkdir(parents=True, exist_ok=True)
    url_file = data_dir / REDIS_URL_FILE
    redis_server = None
    if not env.get("REDIS_URL") and not env.get("WASTATUS_REDIS_SENTINELS"):
        redis_server = RedisServer(data_dir / "redis").start()
        url_file.write_text(redis_server.url + "\n")
        env["REDIS_URL"] = redis_server.url
        click.echo(f"redis    {redis_server.url} (embedded, data in {data_dir / 'redis'})")
    else:
        click.echo("redis    REDIS_URL" if env.get("REDIS_URL") else "redis    sentinels")

    unauthenticated = not (env.get("WASTATUS_APP_SECRET") or env.get("WASTATUS_ONPREM_TOKEN"))
    if unauthenticated and not current().insecure:
        token_file = data_dir / "onprem_token"
        env["WASTATUS_ONPREM_TOKEN"] = _persistent_token(token_file)
        click.echo(f"token    {env['WASTATUS_ONPREM_TOKEN']} (generated, kept in {token_file})")
        click.echo("         send it as 'Authorization: Bearer <token>' or ?token=<token>;")
        click.echo("         set WASTATUS_APP_SECRET to take signed Cloud API webhooks")
    if not env.get("WASTATUS_VERIFY_TOKEN"):
        env["WASTATUS_VERIFY_TOKEN"] = _persistent_token(data_dir / "verify_token")
        click.echo(f"verify   {env['WASTATUS_VERIFY_TOKEN']} (Meta's verify token, generated)")

    cli = [sys.executable, "-m", "webhook.cli"]
    children: list[subprocess.Popen] = []
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    exit_code = 0
    try:
        children.append(_start([*cli, "serve", "--host", host, "--port", str(port)], env))
        children.append(_start([*cli, "worker"], env))
        click.echo(f"webhook  http://{host}:{port}/webhook  (Ctrl-C stops everything)")
        while not stopping:
            dead = [child for child in children if child.poll() is not None]
            if dead:
                click.echo(f"a child exited with {dead[0].returncode}; stopping", err=True)
                exit_code = 1
                break
            time.sleep(0.2)
    finally:
        _stop(children)
        if redis_server is not None:  # last, so the workers' goodbyes still reach it
            redis_server.stop()
            url_file.unlink(missing_ok=True)
        click.echo("stopped")
    sys.exit(exit_code)
