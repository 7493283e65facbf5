"""granian as `wastatus serve` runs it: its options, and prometheus_client's multiprocess mode.

`wastatus serve` execs `python -m webhook.granian_server` so that this process imports
prometheus_client only after `PROMETHEUS_MULTIPROC_DIR` is set: the workers fork from it and
must write their counts to files. What `webhook.gunicorn_conf`'s hooks do for gunicorn is done
here: the directory is emptied at start, each worker marks its files as a web server's, a
worker that starts forgets the live gauges of web workers that have exited (granian has no
hook for a worker's exit; it respawns a dead one, so the forgetting follows at once), and a
private directory made here is removed when the server exits.

granian runs the WSGI app in threads, `WASTATUS_WEB_THREADS` per worker (4): a request that
waits on Redis (or on a slow client's body) lets another one in the same process run meanwhile.
More threads only contend for the GIL: CPU per request and tail latency at full load grow.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from workers import settings

_made_dir: str | None = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _made_dir = tempfile.mkdtemp(prefix="wastatus-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _made_dir

WEB_MARK_PREFIX = "web_"  # = webhook.metrics_view.WEB_MARK_PREFIX
TARGET = "webhook.granian_server:app"

GRACEFUL_SECONDS = 20
"""On SIGTERM a worker finishes the requests it has, for at most this long (gunicorn's
`--graceful-timeout 20`, which the Procfile had)."""
IDLE_KEEP_ALIVE_MS = 60_000
"""How long a kept-alive connection may wait for its next request's headers (granian's
most; gunicorn's `--keep-alive` was 75 s)."""


def _metrics_dir() -> Path:
    return Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def empty_metrics_dir() -> None:
    """Remove files left by an earlier run: they would count twice."""
    path = _metrics_dir()
    path.mkdir(parents=True, exist_ok=True)
    for stale in [*path.glob("*.db"), *path.glob(f"{WEB_MARK_PREFIX}*")]:
        stale.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process took the number: ours is gone
        return False
    return True


def forget_dead_workers() -> None:
    """Forget the live gauges of web workers that exited (their counters keep counting)."""
    from prometheus_client import multiprocess

    for mark in _metrics_dir().glob(f"{WEB_MARK_PREFIX}*"):
        pid = mark.name.removeprefix(WEB_MARK_PREFIX)
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid))


def app():
    """The WSGI app a granian worker serves, built in the worker after marking its files."""
    (_metrics_dir() / f"{WEB_MARK_PREFIX}{os.getpid()}").touch()
    forget_dead_workers()
    from webhook import create_app

    return create_app()


def server(host: str, port: int, workers: int, threads: int, target: str = TARGET):
    """A granian server for `target` (a factory) with the options `wastatus serve` uses."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    return Granian(
        target,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        factory=True,
        workers=workers,
        blocking_threads=threads,
        respawn_failed_workers=True,
        respawn_interval=1.0,
        workers_kill_timeout=GRACEFUL_SECONDS,
        http1_settings=HTTP1Settings(header_read_timeout=IDLE_KEEP_ALIVE_MS),
        log_level=LogLevels.warning,
    )


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM or SIGINT; what `wastatus serve` execs."""
    parser = argparse.ArgumentParser(prog="python -m webhook.granian_server")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--target", default=TARGET, help="a factory (the benchmark's baseline)")
    args = parser.parse_args(argv)
    threads = settings.load().web_threads
    empty_metrics_dir()
    try:
        server(args.host, args.port, args.workers, threads, args.target).serve()
    finally:
        if _made_dir is not None:
            shutil.rmtree(_made_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
