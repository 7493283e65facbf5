"""gunicorn settings and hooks for prometheus_client's multiprocess mode (`-c python:...`).

Each gunicorn worker is its own process with its own counters; a scrape reaches one of them.
In multiprocess mode every worker writes its values to files in `PROMETHEUS_MULTIPROC_DIR` and
/metrics sums the files. The directory must exist before the workers import prometheus_client,
be emptied between runs (old files would add stale counts) and forget the live gauges of a
worker that exited. When the variable is unset, a private directory is made here and removed
when gunicorn exits.

It also validates every setting at import, before the arbiter starts any worker.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from workers import settings

# Validate every setting once, in the arbiter, before any worker boots: a bad one stops
# gunicorn with the same sentences as `wastatus`, instead of a traceback per worker.
try:
    settings.load()
except settings.SettingsError as error:
    sys.stderr.write(error.report())
    sys.exit(2)

_made_dir: str | None = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _made_dir = tempfile.mkdtemp(prefix="wastatus-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _made_dir
if "prometheus_client.values" in sys.modules:  # imported before the directory was known
    from prometheus_client import values

    values.ValueClass = values.get_value_class()

WEB_MARK_PREFIX = "web_"  # = webhook.metrics_view.WEB_MARK_PREFIX
"""`web_<pid>` marks a gunicorn worker of this server; RQ workers that were given the same
directory by mistake would otherwise have their counts read twice (files and Redis)."""

# Defaults `wastatus serve` gives gunicorn (WASTATUS_SERVER=gunicorn); its options override them.
graceful_timeout = 20
keepalive = 75


def on_starting(server) -> None:
    """Empty the metrics directory: files left by an earlier run would count twice."""
    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    for stale in [*path.glob("*.db"), *path.glob(f"{WEB_MARK_PREFIX}*")]:
        stale.unlink()


def post_fork(server, worker) -> None:
    """Mark the worker's files as a web server's: /metrics reads no other process's files."""
    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    (path / f"{WEB_MARK_PREFIX}{os.getpid()}").touch()


def child_exit(server, worker) -> None:
    """Forget the live gauges of a worker that exited (its counters keep counting)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    """Remove the metrics directory made here (one given by the operator stays)."""
    if _made_dir is not None:
        shutil.rmtree(_made_dir, ignore_errors=True)
