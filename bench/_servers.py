"""Processes the benchmarks own: gunicorn as the Procfile runs it, and a null HTTP server.

Everything listens on 127.0.0.1 only and is stopped by its owner; CPU use is read from /proc
so a run can say where the machine's time went.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import requests

from workers.redis_server import free_port

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


def procfile_config() -> str | None:
    """The `-c` config the Procfile gives gunicorn (`python:webhook.gunicorn_conf`), if any."""
    procfile = ROOT / "Procfile"
    if not procfile.is_file():
        return None
    for line in procfile.read_text().splitlines():
        if line.startswith("web:"):
            found = re.search(r"(?:-c|--config)[ =](\S+)", line)
            return found.group(1).strip("'\"") if found else None
    return None


class Gunicorn:
    """gunicorn serving `app` (an `module:factory()` spec) with the Procfile's settings."""

    def __init__(
        self,
        app: str,
        env: Mapping[str, str],
        workers: int = 2,
        port: int | None = None,
        log: Path | None = None,
        config: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.config = config
        self.extra = tuple(extra)
        self.env = dict(env)
        self.workers = workers
        self.port = port or free_port()
        self.log = log
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    def start(self) -> Gunicorn:
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        args = [
            gunicorn,
            self.app,
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--graceful-timeout",
            "20",
            "--keep-alive",
            "75",
            "--log-level",
            "warning",
        ]
        if self.config:
            args[2:2] = ["-c", self.config]
        args += self.extra
        output = self.log.open("ab") if self.log else subprocess.DEVNULL
        env = {**os.environ, **self.env, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )
        wait_http(self.url, self.process)
        deadline = time.monotonic() + 30
        while len(children(self.process.pid)) < self.workers and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # let the last worker finish importing the app
        return self

    def worker_pids(self) -> list[int]:
        return children(self.process.pid) if self.process else []

    def cpu_seconds(self) -> float:
        """CPU used so far by the workers (the arbiter idles and is left out)."""
        return sum(cpu_seconds(pid) for pid in self.worker_pids())

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
