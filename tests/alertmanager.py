"""A real Alertmanager (Debian's `prometheus-alertmanager`) on loopback, for the receiver tests.

Each one has its own config, storage folder and web port, and no cluster gossip
(`--cluster.listen-address=`), so two of them are two independent members of an "HA pair"
the way wastatus sees one: it posts to both.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.processes import terminate
from webhook.cli.redis_server import free_port

BINARY_NAMES = ("prometheus-alertmanager", "alertmanager")
CONFIG = """\
global:
  resolve_timeout: 5m
route:
  receiver: blackhole
  group_wait: 1h
receivers:
  - name: blackhole
"""


def binary() -> str:
    """The Alertmanager binary, or the test fails saying how to install it."""
    for name in BINARY_NAMES:
        found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/local/bin")
        if found:
            return found
    pytest.fail(
        "prometheus-alertmanager is not installed: these tests run a real Alertmanager "
        "(apt-get install -y prometheus-alertmanager; .ci/run installs it)",
        pytrace=False,
    )


class Alertmanager:
    """`Alertmanager(folder).start()`; `.url`; `.alerts()`; `.silence(...)`; `.stop()`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Alertmanager:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "alertmanager.yml"
        config.write_text(CONFIG)
        command = [binary(), f"--config.file={config}", f"--storage.path={self.folder / 'data'}",
                   f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
                   "--log.level=warn"]  # fmt: skip
        log = (self.folder / "alertmanager.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"alertmanager exited: {self.log()}")
            try:
                if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"alertmanager not ready in {timeout}s: {self.log()}")

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process, timeout=10)
            self.process = None

    def log(self) -> str:
        path = self.folder / "alertmanager.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def alerts(self, **params: str) -> list[dict]:
        """GET /api/v2/alerts (active ones unless `params` say otherwise)."""
        response = requests.get(self.url + "/api/v2/alerts", params=params, timeout=5)
        response.raise_for_status()
        return response.json()

    def silence(self, matchers: dict[str, str], minutes: float = 60) -> str:
        """POST /api/v2/silences: silence alerts whose labels equal `matchers`; its id."""
        now = time.time()
        body = {
            "matchers": [{"name": name, "value": value, "isRegex": False, "isEqual": True}
                         for name, value in matchers.items()],
            "startsAt": _rfc3339(now - 1),
            "endsAt": _rfc3339(now + minutes * 60),
            "createdBy": "wastatus tests",
            "comment": "known cause",
        }  # fmt: skip
        response = requests.post(self.url + "/api/v2/silences", json=body, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()["silenceID"]

    def wait_for(self, condition, timeout: float = 30.0, **params: str) -> list[dict]:
        """Poll `alerts(**params)` until `condition(alerts)` holds; the alerts then."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.alerts(**params)
            if condition(found):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not reached in {timeout}s; alerts: {found}")
            time.sleep(0.2)


def _rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class Gate:
    """A TCP forwarder on loopback in front of a port, that can be shut: while shut, every
    connection (open ones too) is closed at once, as a network partition would answer.

    Stopping the server instead would lose what it holds in memory, and freezing it
    (SIGSTOP) does not lose the request: the kernel queues it and the server answers later.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.is_open = True
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if not self.is_open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def shut(self) -> None:
        self.is_open = False
        with self._lock:
            for end in self._sockets:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()
            self._sockets.clear()

    def open(self) -> None:
        self.is_open = True

    def close(self) -> None:
        self.shut()
        self._listener.close()
