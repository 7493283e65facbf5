"""A loopback HTTP endpoint that fails on command: the chaos harness's alert receiver and
resend endpoint.

Its mode says how it answers: `ok` (200), `error` (500), `throttle` (429 with Retry-After) or
`hang` (holds the request past the client's timeout, then 504). It keeps what it accepted:
the ids of the resend requests and of the alert notifications it answered 2xx, so the ledger
can be checked against what the far end actually saw.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("ok", "error", "throttle", "hang")


class FaultyEndpoint:
    """`FaultyEndpoint(name).start()`; `.url`; `.mode = "error"`; `.accepted`; `.stop()`."""

    def __init__(self, name: str, hang_seconds: float = 2.0, retry_after: int = 1) -> None:
        self.name = name
        self.mode = "ok"
        self.hang_seconds = hang_seconds
        self.retry_after = retry_after
        self.answers: Counter = Counter()
        self.accepted: dict[str, dict] = {}
        """Id (event id of a resend, notification id of an alert) → the body, for 2xx answers."""
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The body is a second write: without TCP_NODELAY it waits for the client's delayed
            # ACK (about 40 ms) on every request of a kept-alive connection.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers = endpoint._answer(body)
                payload = b'{"ok": true}' if status < 300 else b'{"ok": false}'
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (a hang longer than its timeout)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self._server.daemon_threads = True
        self._server.request_queue_size = 128  # senders open connections many at a time
        self._server.server_bind()
        self._server.server_activate()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/{self.name}"

    def start(self) -> FaultyEndpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, body: bytes) -> tuple[int, dict[str, str]]:
        mode = self.mode
        if mode == "hang":
            time.sleep(self.hang_seconds)
            status, headers = 504, {}
        elif mode == "error":
            status, headers = 500, {}
        elif mode == "throttle":
            status, headers = 429, {"Retry-After": str(self.retry_after)}
        else:
            status, headers = 200, {}
        with self._lock:
            self.answers[f"{mode}:{status}"] += 1
            if status < 300:
                self._keep(body)
        return status, headers

    def _keep(self, body: bytes) -> None:
        try:
            document = json.loads(body)
        except ValueError:
            return
        if not isinstance(document, dict):
            return
        key = document.get("event_id") if "event_id" in document else document.get("id")
        if isinstance(key, str):
            self.accepted[key] = document

    def snapshot(self) -> dict:
        with self._lock:
            return {"answers": dict(self.answers), "accepted": len(self.accepted)}
