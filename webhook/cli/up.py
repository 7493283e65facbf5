"""`wastatus up`: the whole service in one command, for a first run or a small install.

It runs the web server and a worker and, when REDIS_URL is unset, a Redis of its own with
its data under WASTATUS_DATA_DIR. It supervises them: a child that exits is started again
(Redis on the same port with the same append-only data), after a wait that doubles while the
child keeps failing at start, and `up` gives up only when one fails at start
`MAX_FAILED_STARTS` times in a row. Ctrl-C or SIGTERM stops them all, Redis last, so no process
outlives it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from webhook.cli.redis_server import RedisServer
from webhook.cli.rules import require_deliverable
from webhook.console.auth import hash_password
from workers import settings

STARTUP_SECONDS = 10.0
"""A child that exits sooner than this after it started failed to start (bad settings, a port
in use); one that ran longer died, and its count of failed starts begins again."""
MAX_FAILED_STARTS = 5
"""Failed starts in a row after which `up` stops everything and exits 1 (after waits of 2, 4,
8 and 16 s): what never starts needs a person, and a process manager above `up` sees the exit."""
FIRST_RESTART_SECONDS = 1.0
"""The wait before starting again a child that ran; doubled for each failed start in a row."""
POLL_SECONDS = 0.2
REDIS_START_SECONDS = 60.0
"""How long the embedded Redis may take to load its append-only file and answer PING."""


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
    (gunicorn's workers, RQ's scheduler) and a terminal's Ctrl-C reaches only `up`, which then
    stops everything in order."""
    return subprocess.Popen(args, env=env, start_new_session=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(children: list[subprocess.Popen], known: set[int], timeout: float = 25.0) -> None:
    """SIGTERM every child's group, wait until each group is empty, SIGKILL what is left."""
    for child in children:
        if _group_alive(child.pid):
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        while time.monotonic() < deadline and (child.poll() is None or _group_alive(child.pid)):
            _reap_adopted(known)  # grandchildren whose parent went first are ours to reap
            time.sleep(0.05)
        if _group_alive(child.pid):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    _reap_adopted(known)


def _become_subreaper() -> bool:
    """Adopt our children's orphans (Linux): RQ's work horse leaves its worker's process group,
    so when a worker is killed mid-job its horse would otherwise outlive `up`."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _reap_adopted(known: set[int]) -> None:
    """Reap exited processes we adopted; leave our own children's status to their Popen."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid in known:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.si_pid, 0)


def _adopted(known: set[int]) -> list[int]:
    """Live processes whose parent is `up` but that `up` did not start."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        if int(fields[1]) == os.getpid() and pid not in known and fields[0] != "Z":
            found.append(pid)
    return found


def _stop_adopted(known: set[int], timeout: float = 10.0) -> None:
    """Stop the orphans we adopted (a work horse of a killed worker), SIGKILL if they linger."""
    for pid in _adopted(known):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while (left := _adopted(known)) and time.monotonic() < deadline:
        _reap_adopted(known)
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _reap_adopted(known)


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with {code}"


class Child:
    """One supervised process: how to start it, the process, and its record of failed starts."""

    def __init__(self, name: str, launch: Callable[[], subprocess.Popen]) -> None:
        self.name = name
        self._launch = launch
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.failed_starts = 0
        self.restart_at: float | None = None

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.process = self._launch()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def died(self, how: str) -> str:
        """Note an exit; returns what to say. Sets `restart_at`, or leaves it None to give up."""
        now = time.monotonic()
        lived = now - self.started_at
        self.failed_starts = self.failed_starts + 1 if lived < STARTUP_SECONDS else 0
        if self.process is not None and _group_alive(self.process.pid):
            os.killpg(self.process.pid, signal.SIGKILL)  # what it left behind (RQ's scheduler)
        if self.failed_starts >= MAX_FAILED_STARTS:
            self.restart_at = None
            return (
                f"{self.name} {how} after {lived:.1f} s, failing at start "
                f"{self.failed_starts} times in a row; giving up, stopping everything"
            )
        delay = FIRST_RESTART_SECONDS * 2**self.failed_starts
        self.restart_at = now + delay
        return f"{self.name} {how} after {lived:.1f} s; starting it again in {delay:g} s"


def _supervise(
    children: list[Child], stopping: Callable[[], bool], known: set[int], adopts: bool = False
) -> int:
    """Start again each child that exits, until asked to stop (0) or giving up (1); `adopts`:
    reap the orphans adopted as a subreaper too."""
    while not stopping():
        for child in children:
            if child.running():
                continue
            if child.restart_at is None:
                code = child.process.returncode if child.process is not None else 1
                click.echo(child.died(_how(code)), err=True)
                if child.restart_at is None:
                    return 1
            elif time.monotonic() >= child.restart_at:
                child.restart_at = None
                try:
                    child.start()
                except (OSError, RuntimeError) as error:
                    click.echo(f"{child.name} did not start: {error}", err=True)
                    child.process = None
                    continue
                known.add(child.process.pid)
                click.echo(f"{child.name} started again (pid {child.process.pid})", err=True)
        if adopts:
            _reap_adopted(known)
        time.sleep(POLL_SECONDS)
    return 0


@click.command()
@click.option("--port", type=int, default=8000, show_default=True, help="Web server port.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (put a TLS proxy in front for Meta).",
)
def up(port: int, host: str) -> None:
    """Run the web server, a worker and (without REDIS_URL) an embedded Redis; start again
    any of them that exits, until Ctrl-C or SIGTERM."""
    current = settings.current()
    require_deliverable()  # rules a worker would refuse stop `up` now, not after five restarts
    env = dict(os.environ)
    data_dir = current.data_path
    data_dir.mkdir(parents=True, exist_ok=True)
    url_file = data_dir / settings.REDIS_URL_FILE
    redis_server = None
    if not current.redis_url and not current.redis_sentinels:
        redis_server = RedisServer(data_dir / "redis").start(REDIS_START_SECONDS)
        url_file.write_text(redis_server.url + "\n")
        env["REDIS_URL"] = redis_server.url
        click.echo(f"redis    {redis_server.url} (embedded, data in {data_dir / 'redis'})")
    else:
        click.echo("redis    REDIS_URL" if current.redis_url else "redis    sentinels")

    if not current.authentication_configured and not current.insecure:
        token_file = data_dir / "onprem_token"
        env["WASTATUS_ONPREM_TOKEN"] = _persistent_token(token_file)
        click.echo(f"token    {env['WASTATUS_ONPREM_TOKEN']} (generated, kept in {token_file})")
        click.echo("         send it as 'Authorization: Bearer <token>' or ?token=<token>;")
        click.echo("         set WASTATUS_APP_SECRET to take signed Cloud API webhooks")
    if not current.verify_token:
        env["WASTATUS_VERIFY_TOKEN"] = _persistent_token(data_dir / "verify_token")
        click.echo(f"verify   {env['WASTATUS_VERIFY_TOKEN']} (Meta's verify token, generated)")

    if not current.console_enabled:
        password = _persistent_token(data_dir / "console_password")
        env["WASTATUS_CONSOLE_USERS"] = f"admin:{hash_password(password)}"
        env["WASTATUS_CONSOLE_SECRET"] = current.console_secret or _persistent_token(
            data_dir / "console_secret"
        )
        click.echo(f"console  http://{host}:{port}/console user admin, password {password}")
        click.echo(f"         (generated, kept in {data_dir / 'console_password'})")

    cli = [sys.executable, "-m", "webhook.cli"]
    serve = [*cli, "serve", "--host", host, "--port", str(port)]
    children = [
        Child("web server", lambda: _start(serve, env)),
        Child("worker", lambda: _start([*cli, "worker"], env)),
    ]
    if redis_server is not None:
        embedded = Child("redis", lambda: redis_server.start(REDIS_START_SECONDS).process)
        embedded.started_at, embedded.process = time.monotonic(), redis_server.process
        children.append(embedded)
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    adopts = _become_subreaper()
    known: set[int] = {redis_server.process.pid} if redis_server is not None else set()
    exit_code = 0
    try:
        for child in children[:2]:
            child.start()
            known.add(child.process.pid)
        click.echo(f"webhook  http://{host}:{port}/webhook  (Ctrl-C stops everything)")
        exit_code = _supervise(children, lambda: stopping, known, adopts)
    finally:
        _stop([child.process for child in children[:2] if child.process is not None], known)
        if adopts:
            _stop_adopted(known)
        if redis_server is not None:  # last, so the workers' goodbyes still reach it
            redis_server.stop()
            url_file.unlink(missing_ok=True)
        click.echo("stopped")
    sys.exit(exit_code)
