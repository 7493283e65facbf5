"""`wastatus up`: the whole service in one command, and nothing left running after it."""

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_lib
import requests

from bench._receiver import Reply
from tests.conftest import load_fixture
from tests.processes import (
    alive,
    clean_env,
    descendants,
    kill_family,
    processes,
    spawn,
    wait_for_http,
    wait_until_gone,
)
from webhook.cli import up as up_cli
from webhook.cli.redis_server import free_port


def start_up(tmp_path, **settings: str):
    """`wastatus up` in a session of its own, with a clean environment and data dir."""
    port = free_port()
    env = clean_env(tmp_path, **settings)
    process = spawn(["up", "--port", str(port)], env, tmp_path / "up.log")
    base = f"http://127.0.0.1:{port}"
    wait_for_http(base, process, tmp_path / "up.log")
    return process, base, env


def kill_up(process) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def up(tmp_path):
    process, base, env = start_up(tmp_path)
    yield process, base, env
    kill_up(process)


def children_of_up(process) -> set[int]:
    """Wait until up runs its whole family (gunicorn + 2 workers, RQ worker, Redis)."""
    deadline = time.monotonic() + 30
    while len(family := descendants(process.pid)) < 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    return family


class TestUp:
    """`wastatus up` runs the whole service, and nothing is left running after it."""

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
    """`wastatus serve` will not run open to anyone by accident."""

    def test_refuses_to_start_without_any_secret(self, tmp_path):
        """serve exits with a sentence naming the settings when nothing authenticates."""
        env = clean_env(tmp_path)
        result = subprocess.run(
            [sys.executable, "-m", "webhook.cli", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0
        assert "WASTATUS_APP_SECRET" in result.stderr and "WASTATUS_INSECURE" in result.stderr


SUPERVISED_ENV = {
    "WASTATUS_ONPREM_TOKEN": "up-token",
    "WASTATUS_GROUP_WAIT": "0",
    "WASTATUS_GROUP_INTERVAL": "1",
    "WASTATUS_DRAIN_LEASE": "2",
    "WASTATUS_WORKER_MAINTENANCE": "2",
    "WASTATUS_WORKER_TTL": "20",
    "WEB_CONCURRENCY": "1",
}


@pytest.fixture
def supervised(tmp_path, receiver):
    """`wastatus up` with an embedded Redis whose alerts go to the test's receiver; its whole
    family is SIGKILLed after the test whatever happened."""
    process, base, env = start_up(
        tmp_path, **SUPERVISED_ENV, WASTATUS_ALERT_WEBHOOK_URL=receiver.url
    )
    yield process, base, env
    if process.poll() is None:
        kill_family(process.pid)
        process.wait()


def post_failure(base: str, n: int) -> int:
    body = json.dumps({"statuses": [{"id": f"gBUP{n:06d}", "recipient_id": f"8190{n:08d}",
                                     "status": "failed", "timestamp": "1700000000",
                                     "errors": [{"code": 470}]}]})  # fmt: skip
    reply = requests.post(
        f"{base}/webhook", data=body, headers={"Authorization": "Bearer up-token"}, timeout=10
    )
    return reply.status_code


def child_of(parent: int, word: str, timeout: float = 30, leader: bool = False) -> int:
    """The pid of `parent`'s live child whose command line contains `word` (waits for one);
    with `leader`, one that leads its own process group (RQ's work horse, not its scheduler)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid, (ppid, state, cmdline) in processes().items():
            mine = ppid == parent and word in cmdline and state != "Z"
            if mine and (not leader or os.getpgid(pid) == pid):
                return pid
        time.sleep(0.05)
    pytest.fail(f"no child of {parent} runs {word!r}")


def wait_for_line(log: Path, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        if time.monotonic() > deadline:
            pytest.fail(f"{text!r} not in the log of up: {log.read_text()[-3000:]}")
        time.sleep(0.1)


def alerted_events(receiver) -> int:
    return sum({r.json()["id"]: r.json()["new"] for r in receiver.requests}.values())


def wait_for_alerts(receiver, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while alerted_events(receiver) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"{alerted_events(receiver)} of {count} failures alerted")
        time.sleep(0.1)


class TestSupervision:
    """`up` starts again a child that dies, and stops everything only when asked to."""

    def test_a_killed_worker_is_started_again_and_work_goes_on(
        self, supervised, receiver, tmp_path
    ):
        """SIGKILL the worker: up says so, starts a new one, and failures are alerted again."""
        process, base, _ = supervised
        assert post_failure(base, 1) == 200
        wait_for_alerts(receiver, 1)
        worker = child_of(process.pid, "webhook.cli worker")
        os.kill(worker, signal.SIGKILL)
        wait_for_line(tmp_path / "up.log", "worker was killed by SIGKILL")
        wait_for_line(tmp_path / "up.log", "worker started again")
        assert child_of(process.pid, "webhook.cli worker") != worker
        assert post_failure(base, 2) == 200
        wait_for_alerts(receiver, 2)
        assert process.poll() is None

    def test_a_killed_embedded_redis_is_started_again_with_its_data(
        self, supervised, receiver, tmp_path
    ):
        """SIGKILL the embedded redis-server: it comes back on the same port with every event
        acknowledged before (append-only), the web server answers throughout, work goes on."""
        process, base, env = supervised
        assert post_failure(base, 1) == 200
        wait_for_alerts(receiver, 1)
        url = (Path(env["WASTATUS_DATA_DIR"]) / "redis.url").read_text().strip()
        client = redis_lib.Redis.from_url(url, socket_connect_timeout=0.5)

        def seen() -> int:  # failures taken, as the dedup marks (one set per day) remember them
            return sum(client.scard(key) for key in client.scan_iter(match="wastatus:seen:*"))

        assert seen() == 1
        server = child_of(process.pid, "redis-server")
        os.kill(server, signal.SIGKILL)
        # While Redis is away the web server still answers: 503, so Meta retries.
        answers = set()
        deadline = time.monotonic() + 30
        while (status := post_failure(base, 2)) != 200 and time.monotonic() < deadline:
            answers.add(status)
            time.sleep(0.1)
        assert status == 200 and answers <= {503}
        assert child_of(process.pid, "redis-server") != server
        assert seen() == 2  # the first failure's mark survived the kill, beside the second
        assert (Path(env["WASTATUS_DATA_DIR"]) / "redis.url").read_text().strip() == url
        wait_for_alerts(receiver, 2)
        client.close()
        assert "redis was killed by SIGKILL" in (tmp_path / "up.log").read_text()

    def test_stop_leaves_no_process_after_a_worker_died_mid_job(self, supervised, receiver):
        """A worker SIGKILLed while its work horse posts an alert: the horse, adopted by up,
        does not outlive SIGTERM to up, and nothing else does either."""
        process, base, _ = supervised
        receiver.script(Reply(delay=20.0))
        assert post_failure(base, 1) == 200
        worker = child_of(process.pid, "webhook.cli worker")
        deadline = time.monotonic() + 30
        while True:  # the flush job's horse, held by the receiver (a drain job's ends at once)
            horse = child_of(worker, "webhook.cli worker", leader=True)
            time.sleep(1.0)
            if processes().get(horse, (0, "Z"))[1] != "Z" or time.monotonic() > deadline:
                break
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while processes().get(horse, (0,))[0] != process.pid and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes()[horse][0] == process.pid  # adopted by up
        family = descendants(process.pid)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0
        assert wait_until_gone(family | {horse}) == []


def python_child(code: str, starts: list[float]) -> up_cli.Child:
    """A supervised child that runs `code` in a fresh Python; `starts` gets each start time."""

    def launch() -> subprocess.Popen:
        starts.append(time.monotonic())
        return subprocess.Popen([sys.executable, "-c", code])

    child = up_cli.Child("child", launch)
    child.start()
    return child


class TestRestartPolicy:
    """Waits double while a child fails at start; `up` gives up only on failed starts in a row."""

    def test_gives_up_after_failed_starts_in_a_row(self, monkeypatch, capsys):
        """A child that exits at once is started 5 times, after waits that double, then up
        stops (1) and says why."""
        monkeypatch.setattr(up_cli, "FIRST_RESTART_SECONDS", 0.05)
        starts: list[float] = []
        child = python_child("raise SystemExit(3)", starts)
        assert up_cli._supervise([child], lambda: False, set()) == 1
        assert len(starts) == up_cli.MAX_FAILED_STARTS
        gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
        assert all(gap >= 0.05 * 2 ** (n + 1) for n, gap in enumerate(gaps)), gaps
        said = capsys.readouterr().err
        assert said.count("child exited with 3") == up_cli.MAX_FAILED_STARTS
        assert "failing at start 5 times in a row; giving up" in said

    def test_a_child_that_ran_is_started_again_for_ever(self, monkeypatch, capsys):
        """A child that dies after running past the start-up time is started again each time,
        after the first wait, and up goes on until asked to stop (0)."""
        monkeypatch.setattr(up_cli, "FIRST_RESTART_SECONDS", 0.05)
        monkeypatch.setattr(up_cli, "STARTUP_SECONDS", 0.2)
        starts: list[float] = []
        child = python_child("import time; time.sleep(0.3); raise SystemExit(1)", starts)
        assert up_cli._supervise([child], lambda: len(starts) >= 7, set()) == 0
        assert "giving up" not in capsys.readouterr().err
        child.process.wait()
