"""`wastatus up`: the whole service in one command, and nothing left running after it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import load_fixture
from tests.processes import alive, descendants, wait_until_gone
from workers.redis_server import free_port


@pytest.fixture
def up(tmp_path):
    """`wastatus up` in a session of its own, with a clean environment and data dir."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WASTATUS_", "REDIS_"))}
    env["WASTATUS_DATA_DIR"] = str(tmp_path / "data")
    log = tmp_path / "up.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "webhook.cli", "up", "--port", str(port)],
            env=env,
            start_new_session=True,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"{base}/webhook", timeout=1)
            break
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"wastatus up did not serve: {log.read_text()}")
            time.sleep(0.2)
    yield process, base, env
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def children_of_up(process) -> set[int]:
    """Wait until up runs its whole family (gunicorn + 2 workers, RQ worker, Redis)."""
    deadline = time.monotonic() + 30
    while len(family := descendants(process.pid)) < 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    return family


class TestUp:
    def test_serves_takes_a_failure_and_stops_every_child_on_sigterm(self, up):
        """A newcomer's run: the generated token works, and SIGTERM leaves no process."""
        process, base, env = up
        data_dir = Path(env["WASTATUS_DATA_DIR"])
        token = (data_dir / "onprem_token").read_text().strip()
        verify = (data_dir / "verify_token").read_text().strip()

        handshake = requests.get(
            f"{base}/webhook",
            params={"hub.mode": "subscribe", "hub.verify_token": verify, "hub.challenge": "42"},
        )
        assert handshake.text == "42"
        reply = requests.post(
            f"{base}/webhook",
            data=load_fixture("on_premises/failed_470.json"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert reply.json()["stored"] == 1

        # Another command finds the embedded Redis through the data dir alone.
        listed = subprocess.run(
            [sys.executable, "-m", "webhook.cli", "quarantine", "list", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout) == []

        family = children_of_up(process)
        assert len(family) >= 5, alive(family)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0
        assert wait_until_gone(family) == []
        assert not (data_dir / "redis.url").exists()

    def test_ctrl_c_stops_everything(self, up):
        """Ctrl-C reaches the whole foreground group; up still stops every child itself."""
        process, _, _ = up
        family = children_of_up(process)
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=40)
        assert wait_until_gone(family) == []

    def test_keeps_its_data_across_restarts(self, up, tmp_path):
        """The embedded Redis is append-only under the data dir, so a restart keeps the events."""
        process, base, env = up
        token = (Path(env["WASTATUS_DATA_DIR"]) / "onprem_token").read_text().strip()
        requests.post(
            f"{base}/webhook",
            data=load_fixture("on_premises/errors_toplevel.json"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=40)
        aof = Path(env["WASTATUS_DATA_DIR"]) / "redis" / "appendonly.aof"
        assert b"wastatus:seen:" in aof.read_bytes()


class TestServe:
    def test_refuses_to_start_without_any_secret(self, tmp_path):
        """serve exits with a sentence naming the settings when nothing authenticates."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("WASTATUS_")}
        result = subprocess.run(
            [sys.executable, "-m", "webhook.cli", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0
        assert "WASTATUS_APP_SECRET" in result.stderr and "WASTATUS_INSECURE" in result.stderr
