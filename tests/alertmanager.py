"""A real Alertmanager (Debian's `prometheus-alertmanager`) on loopback, for the receiver tests.

Each one has its own config, storage folder and web port, and no cluster gossip
(`--cluster.listen-address=`), so two of them are two independent members of an "HA pair"
the way wastatus sees one: it posts to both.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.processes import terminate
from workers.redis_server import free_port

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
