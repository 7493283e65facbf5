"""A real HTTP server on loopback that stands in for alert receivers and resend endpoints.

It records every request and answers with scripted statuses, so a test can make the far
end fail (500, 429 with Retry-After, a slow answer) and then recover.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float = field(default_factory=time.time)
    """When the answer was sent (Unix seconds)."""

    def json(self):
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: bytes = b'{"ok": true}'


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a sender opens many connections at once; 5 would reset some


class Receiver:
    """`Receiver().start()`; `.url`; `.script(Reply(500), times=3)`; `.requests`; `.stop()`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._script: deque[Reply] = deque()
        self.default = Reply()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # the body is a second write: do not hold it back

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver._lock:
                    reply = receiver._script.popleft() if receiver._script else receiver.default
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
                with receiver._arrived:
                    receiver.requests.append(
                        Recorded(self.command, self.path, dict(self.headers), body, reply.status)
                    )
                    receiver._arrived.notify_all()

            do_POST = do_PUT = do_GET = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

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
