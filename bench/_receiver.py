"""A loopback HTTP endpoint that records every request and answers as scripted: the far end
(alert receiver, resend endpoint) of the tests, the chaos harness and the alert-latency bench.

Tests script failures (`script(Reply(500), times=3)`) and read what arrived; the chaos harness
makes a fault the default answer for a while (`default = fault_reply("throttle")`) and checks
the ledger against what was accepted; the latency bench reads when each alert arrived. Each
answer is one write on a TCP_NODELAY socket of a kept-alive HTTP/1.1 connection: headers and
body in two writes wait for the client's delayed ACK, about 40 ms a request instead of 1.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Recorded:
    """One request as it arrived, and the status it was answered with."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    arrived: float
    """When the request was read (Unix seconds)."""
    at: float = field(default_factory=time.time)
    """When the answer was sent, after any scripted delay (Unix seconds)."""

    def json(self):
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """How to answer one request: status, extra headers, a delay before answering, a body."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: bytes = b'{"ok": true}'


FAILED = b'{"ok": false}'


def fault_reply(mode: str, hang_seconds: float = 2.0, retry_after: int = 1) -> Reply:
    """A far end in trouble: `error` (500), `throttle` (429 with Retry-After), `hang` (held
    `hang_seconds`, past the client's timeout, then 504), or `ok` (200)."""
    return {
        "ok": Reply(),
        "error": Reply(500, body=FAILED),
        "throttle": Reply(429, {"Retry-After": str(retry_after)}, body=FAILED),
        "hang": Reply(504, delay=hang_seconds, body=FAILED),
    }[mode]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a sender opens many connections at once; 5 would reset some


class Receiver:
    """`Receiver().start()`; `.url`; `.script(Reply(500), times=3)`; `.requests`; `.stop()`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        """Every request answered, in order (recorded just before its answer is written)."""
        self.abandoned: list[Recorded] = []
        """Requests held by a delay whose client left before the answer: never answered."""
        self.default = Reply()
        """The answer when nothing is scripted; set it to a `fault_reply(...)` for a while."""
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._connections: set[socket.socket] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # kept-alive, as real receivers are
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with receiver._lock:
                    receiver._connections.add(self.connection)

            def finish(self) -> None:
                with receiver._lock:
                    receiver._connections.discard(self.connection)
                super().finish()

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                arrived = time.time()
                with receiver._lock:
                    reply = receiver._script.popleft() if receiver._script else receiver.default
                if reply.delay:
                    time.sleep(reply.delay)
                    if self._client_left():
                        # Never answered: a far end whose client timed out or died.
                        self.close_connection = True
                        with receiver._lock:
                            receiver.abandoned.append(self._recorded(body, reply, arrived))
                        return
                # Recorded before the write, so whoever reads the answer finds the request.
                with receiver._arrived:
                    receiver.requests.append(self._recorded(body, reply, arrived))
                    receiver._arrived.notify_all()
                try:
                    self.wfile.write(self._response(reply))
                except OSError:
                    self.close_connection = True  # the client left while we wrote

            def _recorded(self, body: bytes, reply: Reply, arrived: float) -> Recorded:
                headers = dict(self.headers)
                return Recorded(self.command, self.path, headers, body, reply.status, arrived)

            def _client_left(self) -> bool:
                """The client closed its end while we held its request (its timeout, a kill)."""
                readable, _, _ = select.select([self.connection], [], [], 0)
                if not readable:
                    return False
                try:
                    return self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    return True

            def _response(self, reply: Reply) -> bytes:
                """Status line, headers and body as one buffer, for one write."""
                headers = {
                    "Content-Type": "application/json",
                    "Content-Length": str(len(reply.body)),
                    **reply.headers,
                }
                if headers.get("Connection", "").lower() == "close":
                    self.close_connection = True
                phrase = self.responses.get(reply.status, ("",))[0]
                lines = [f"HTTP/1.1 {reply.status} {phrase}"]
                lines += [f"{name}: {value}" for name, value in headers.items()]
                return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body

            do_POST = do_PUT = do_GET = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test and benchmark output clean

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close kept-alive connections: a stopped far end answers nothing."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)

    def script(self, reply: Reply, times: int = 1) -> None:
        """Answer the next `times` requests with `reply`, then go back to the default."""
        with self._lock:
            self._script.extend([reply] * times)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Recorded]:
        """Block until at least `count` requests arrived (or fail after `timeout`)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} requests, got {len(self.requests)} in {timeout}s"
                    )
                self._arrived.wait(remaining)
            return list(self.requests)

    def wait_until(self, match: Callable[[Recorded], bool], timeout: float) -> Recorded | None:
        """The first request `match` accepts, waiting up to `timeout` for it; else None."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._arrived:
            while True:
                for recorded in self.requests[seen:]:
                    if match(recorded):
                        return recorded
                seen = len(self.requests)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._arrived.wait(remaining)

    def accepted(self) -> dict[str, dict]:
        """The JSON bodies answered 2xx by their id (a resend's `event_id`, an alert's `id`):
        what the far end actually took, to check a ledger against."""
        with self._lock:
            answered = [recorded for recorded in self.requests if recorded.status < 300]
        kept = {}
        for recorded in answered:
            try:
                document = recorded.json()
            except ValueError:
                continue
            if not isinstance(document, dict):
                continue
            key = document.get("event_id") if "event_id" in document else document.get("id")
            if isinstance(key, str):
                kept[key] = document
        return kept

    def snapshot(self) -> dict:
        """Answers by status, requests abandoned by their client, ids accepted: for a report."""
        with self._lock:
            answers = Counter(str(recorded.status) for recorded in self.requests)
            abandoned = len(self.abandoned)
        return {"answers": dict(answers), "abandoned": abandoned, "accepted": len(self.accepted())}
