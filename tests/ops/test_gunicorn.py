"""`wastatus serve` under real gunicorn with 2 workers, and a real `wastatus worker` process.

A scrape reaches one gunicorn worker; in multiprocess mode it must still report what every
worker counted, and what the RQ worker processes counted through Redis.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector

from tests.conftest import APP_SECRET
from tests.ops.conftest import Scrape, cloud_status
from webhook.signature import sign
from workers.redis_server import free_port

BIN = Path(sys.executable).parent


class Server:
    """`wastatus serve` on a free loopback port; stopped (SIGTERM, then waited for) by the test."""

    def __init__(self, env: dict[str, str], workers: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(BIN / "wastatus"), "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(workers)],
            env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("gunicorn did not start")
            time.sleep(0.1)

    def post(self, body: dict) -> int:
        raw = json.dumps(body).encode()
        headers = {"X-Hub-Signature-256": sign(raw, APP_SECRET),
                   "Content-Type": "application/json", "Connection": "close"}  # fmt: skip
        reply = requests.post(self.url + "/webhook", data=raw, headers=headers, timeout=10)
        return reply.status_code

    def scrape(self) -> Scrape:
        response = requests.get(self.url + "/metrics", timeout=10)
        assert response.status_code == 200
        return Scrape(response.text)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def serve_env(redis, redis_url, tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("WASTATUS_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update({
        "REDIS_URL": redis_url,
        "WASTATUS_APP_SECRET": APP_SECRET,
        "WASTATUS_DATA_DIR": str(tmp_path / "data"),
        "WASTATUS_LOG_LEVEL": "WARNING",
        "WASTATUS_GROUP_WAIT": "1h",
        "TMPDIR": str(tmp_path),
    })  # fmt: skip
    return env


def _accepted_by_pid(directory: Path) -> dict[int, float]:
    counts = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for family in MultiProcessCollector.merge([str(path)]):
            for sample in family.samples:
                if sample.name == "wastatus_webhook_requests_total":
                    counts[pid] = counts.get(pid, 0) + sample.value
    return counts


def _web_pids(directory: Path) -> set[str]:
    return {path.name.removeprefix("web_") for path in directory.glob("web_*")}


class TestMultiprocess:
    def test_two_workers_counts_add_up_in_every_scrape(self, serve_env, tmp_path):
        """Requests served by either gunicorn worker all show in /metrics, whichever answers."""
        metrics_dir = tmp_path / "prom"
        metrics_dir.mkdir()
        serve_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        server = Server(serve_env)
        try:
            sent = 0
            with ThreadPoolExecutor(8) as pool:
                while sent < 800:
                    codes = list(pool.map(server.post, [cloud_status("delivered")
                                                        for _ in range(40)]))  # fmt: skip
                    assert codes == [200] * 40
                    sent += 40
                    if len(_accepted_by_pid(metrics_dir)) >= 2:
                        break
            per_worker = _accepted_by_pid(metrics_dir)
            assert len(per_worker) == 2, "both gunicorn workers should have served requests"
            assert sum(per_worker.values()) == sent
            for _ in range(6):  # several scrapes, answered by either worker
                scrape = server.scrape()
                assert scrape.value("wastatus_webhook_requests_total", outcome="accepted") == sent
                assert scrape.value("wastatus_statuses_total", status="delivered") == sent
        finally:
            server.stop()

    def test_counts_of_a_killed_worker_survive_its_restart(self, serve_env, tmp_path):
        """gunicorn replaces a SIGKILLed worker; what the dead worker counted is still reported."""
        metrics_dir = tmp_path / "prom"
        metrics_dir.mkdir()
        serve_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        server = Server(serve_env)
        try:
            for _ in range(20):
                assert server.post(cloud_status("sent")) == 200
            victim = max(_accepted_by_pid(metrics_dir).items(), key=lambda item: item[1])[0]
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while True:  # the replacement answers once gunicorn has forked it
                try:
                    if server.scrape().value("wastatus_statuses_total", status="sent") == 20:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("the dead worker's counts were lost")
                time.sleep(0.2)
            assert server.post(cloud_status("sent")) == 200
            assert server.scrape().value("wastatus_statuses_total", status="sent") == 21
        finally:
            server.stop()

    def test_serve_makes_and_removes_its_own_metrics_dir(self, serve_env, tmp_path):
        """Without PROMETHEUS_MULTIPROC_DIR, serve counts in a private dir it removes on exit."""
        server = Server(serve_env)
        try:
            made = list(tmp_path.glob("wastatus-metrics-*"))
            assert len(made) == 1
            assert server.post(cloud_status("read")) == 200
            assert server.scrape().value("wastatus_statuses_total", status="read") == 1
            assert list(made[0].glob("counter_*.db"))
        finally:
            server.stop()
        assert not made[0].exists()

    def test_counts_of_worker_processes_arrive_through_redis(self, serve_env, tmp_path):
        """Failures enriched by a separate `wastatus worker` show in /metrics, counted once.

        The worker is given the web server's multiprocess dir, as a shared environment file
        would: its files must not be read on top of what it exported to Redis.
        """
        metrics_dir = tmp_path / "prom"
        metrics_dir.mkdir()
        serve_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        server = Server(serve_env)
        try:
            for code in (131049, 131049, 131026):
                assert server.post(cloud_status(code=code)) == 200
            subprocess.run([str(BIN / "wastatus"), "worker", "--burst"], env=serve_env,
                           check=True, timeout=120)  # fmt: skip
            assert any(path.name.startswith("counter_") for path in metrics_dir.iterdir()
                       if path.stem.split("_")[-1] not in _web_pids(metrics_dir))  # fmt: skip
            scrape = server.scrape()
            failures = "wastatus_failures_total"
            assert scrape.value(failures, api="cloud", code="131049", category="policy") == 2
            assert scrape.value(failures, api="cloud", code="131026") == 1
            jobs = "wastatus_job_duration_seconds_count"
            assert scrape.value(jobs, function="workers.drain.drain_inbox", outcome="succeeded")
            assert scrape.value("wastatus_inbox_events") == 0
            assert scrape.value("wastatus_alert_groups_open") == 2
        finally:
            server.stop()
