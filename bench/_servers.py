"""Processes the benchmarks own: the web server as shipped or another, and a null HTTP server.

Everything listens on 127.0.0.1 only and is stopped by its owner; CPU use is read from /proc
so a run can say where the machine's time went.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import requests

from webhook.cli.redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (0.0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def children(pid: int) -> list[int]:
    """The ids of the direct children of `pid`."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(part) for part in text.split()]


def wait_http(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Wait until `url` answers any HTTP status; raise if `process` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing answered at {url}") from None
            time.sleep(0.1)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (workers, and workers' own children)."""
    found = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


SERVERS = (
    "shipped",
    "granian-shipped",
    "granian",
    "gunicorn",
    "gunicorn-gthread",
    "gunicorn-gevent",
    "uwsgi",
)
"""What `--server` can name: `wastatus serve` as shipped, granian with the options it gives it
(`granian-shipped`), or a WSGI server run directly with its defaults and `extra`."""


def server_command(
    server: str, app: str, port: int, workers: int, extra: tuple[str, ...] = ()
) -> list[str]:
    """The command that serves `app` (`module:factory`) with `server` on 127.0.0.1:`port`.

    Each server gets the settings `wastatus serve` would give it where it has one; `extra`
    adds options (`--blocking-threads 4`, `--threads 4`).
    """
    python = sys.executable
    module, _, factory = app.partition(":")
    target = f"{module}:{factory.removesuffix('()')}"
    if server == "shipped":
        return [python, "-m", "webhook.cli", "serve", "--host", "127.0.0.1", "--port",
                str(port), "--workers", str(workers), *extra]  # fmt: skip
    if server == "granian-shipped":  # granian with the options `wastatus serve` gives it
        return [python, "-m", "webhook.granian_server", "--host", "127.0.0.1", "--port",
                str(port), "--workers", str(workers), "--target", target, *extra]  # fmt: skip
    if server == "granian":
        return [str(Path(python).with_name("granian")), "--interface", "wsgi", "--factory",
                "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                "--log-level", "warning", "--workers-kill-timeout", "20",
                "--respawn-failed-workers", *extra, target]  # fmt: skip
    if server.startswith("gunicorn"):
        kind = server.partition("-")[2] or "sync"
        config = ["-c", "python:webhook.gunicorn_conf"] if module == "webhook" else []
        return [str(Path(python).with_name("gunicorn")), app, *config, "--bind",
                f"127.0.0.1:{port}", "--workers", str(workers), "--worker-class", kind,
                "--graceful-timeout", "20", "--keep-alive", "75", "--log-level", "warning",
                *extra]  # fmt: skip
    if server == "uwsgi":  # pyuwsgi: uWSGI's own HTTP parser, a master and forked workers
        return [str(Path(python).with_name("uwsgi")), "--http11-socket", f"127.0.0.1:{port}",
                "--master", "--processes", str(workers), "--lazy-apps", "--disable-logging",
                "--mount", f"/={target}()", "--need-app", "--die-on-term", *extra]  # fmt: skip
    raise ValueError(f"unknown server {server!r}: one of {', '.join(SERVERS)}")


class Served:
    """`app` under `server` (see `server_command`) on a free loopback port, as a process tree."""

    def __init__(
        self,
        server: str,
        app: str,
        env: Mapping[str, str],
        workers: int = 2,
        log: Path | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.server = server
        self.port = free_port()
        self.args = server_command(server, app, self.port, workers, tuple(extra))
        self.env = dict(env)
        self.workers = workers
        self.log = log
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    def start(self) -> Served:
        output = self.log.open("ab") if self.log else subprocess.DEVNULL
        env = {**os.environ, **self.env, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            self.args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )
        wait_http(self.url, self.process)
        deadline = time.monotonic() + 30
        while len(children(self.process.pid)) < self.workers and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # let the last worker finish importing the app
        return self

    def cpu_seconds(self) -> float:
        """CPU used so far by the whole tree (a master that idles adds next to nothing)."""
        if self.process is None:
            return 0.0
        pids = [self.process.pid, *descendants(self.process.pid)]
        return sum(cpu_seconds(pid) for pid in pids)

    def stop(self, timeout: float = 25.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


NULL_SERVER = """
import asyncio, sys
REPLY = b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok"
class Null(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.seen = transport, b""
    def data_received(self, data):
        self.seen += data
        head, sep, rest = self.seen.partition(b"\\r\\n\\r\\n")
        if not sep:
            return
        length = 0
        for line in head.split(b"\\r\\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(rest) >= length:
            self.transport.write(REPLY)
            self.transport.close()
async def main():
    server = await asyncio.get_running_loop().create_server(Null, "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


class NullServer:
    """An HTTP server that reads each request and answers 200: a probe of generator capacity."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    def start(self) -> NullServer:
        self.process = subprocess.Popen(
            [sys.executable, "-c", NULL_SERVER, str(self.port)], stdin=subprocess.DEVNULL
        )
        wait_http(self.url, self.process)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait()
