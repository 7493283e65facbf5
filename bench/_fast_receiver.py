"""A loopback HTTP endpoint that answers 200 as fast as Python can, in a process of its own.

The benchmarks of the resend path need a receiver that is not the bottleneck: a bare asyncio
protocol (no framework, keep-alive, the answer in one write) in a child process, so its CPU is
not the worker's. It counts requests per path and the distinct `webhook-id`s of resends, and
notes when the first request of each path arrived.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import time
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

ANSWER = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"ok": true}'
)
PATHS = ("/resend", "/alerts")


class _Protocol(asyncio.Protocol):
    def __init__(self, counters: dict[str, Synchronized], firsts: dict, ids: set) -> None:
        self.counters, self.firsts, self.ids = counters, firsts, ids
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length, webhook_id = 0, None
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                lowered = name.strip().lower()
                if lowered == "content-length":
                    length = int(value)
                elif lowered == "webhook-id":
                    webhook_id = value.strip()
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            path = head.split(" ", 2)[1] if " " in head else "/"
            self.transport.write(ANSWER)
            self._count(path, webhook_id)

    def _count(self, path: str, webhook_id: str | None) -> None:
        name = "/alerts" if path.startswith("/alerts") else "/resend"
        counter = self.counters[name]
        with counter.get_lock():
            counter.value += 1
        first = self.firsts[name]
        if first.value == 0.0:
            first.value = time.time()
        if name == "/resend" and webhook_id and webhook_id not in self.ids:
            self.ids.add(webhook_id)
            distinct = self.counters["distinct"]
            with distinct.get_lock():
                distinct.value += 1


def _serve(sock: socket.socket, counters: dict, firsts: dict) -> None:
    ids: set[str] = set()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Protocol(counters, firsts, ids), sock=sock)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class FastReceiver:
    """`FastReceiver().start()`; `.url`; `.count("/resend")`; `.distinct`; `.stop()`."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("fork")
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(1024)
        self.counters = {name: context.Value("q", 0) for name in (*PATHS, "distinct")}
        self.firsts = {name: context.Value("d", 0.0) for name in PATHS}
        self._process = context.Process(
            target=_serve, args=(self._sock, self.counters, self.firsts), daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> FastReceiver:
        self._process.start()
        return self

    def count(self, path: str) -> int:
        return self.counters[path].value

    @property
    def distinct(self) -> int:
        """Distinct `webhook-id`s of resends answered (each event counts once)."""
        return self.counters["distinct"].value

    def first(self, path: str) -> float | None:
        """When the first request to `path` arrived (Unix seconds), or None."""
        return self.firsts[path].value or None

    def reset(self) -> None:
        for value in (*self.counters.values(), *self.firsts.values()):
            value.value = 0

    def cpu_seconds(self) -> float:
        """User + system CPU the receiver process has used."""
        stat = Path(f"/proc/{self._process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self._process.terminate()
        self._process.join(5)
        self._sock.close()
