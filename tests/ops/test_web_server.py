"""`wastatus serve` as a real process with 2 workers, under granian and under gunicorn.

Every test runs against both servers `WASTATUS_SERVER` can pick. A scrape reaches one worker;
in multiprocess mode it must still report what every worker counted, and what the RQ worker
processes counted through Redis. What the service promises holds under either: a graceful
SIGTERM, the body limit, the request log, 503 without Redis, never a 500, and correct answers
when one process serves requests in several threads at once (granian).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector

from tests.conftest import APP_SECRET
from tests.ops.conftest import Scrape, cloud_status
from tests.processes import clean_env, spawn, terminate, wait_for_http
from webhook.cli.redis_server import free_port
from webhook.signature import sign
from workers import settings
from workers.inbox import intake

BIN = Path(sys.executable).parent
SERVERS = ("granian", "gunicorn")


class Server:
    """`wastatus serve` on a free loopback port; stopped (SIGTERM, then waited for) by the test.

    Its output goes to `log` (the request log among it) when one is given.
    """

    def __init__(self, env: dict[str, str], workers: int = 2, log: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.process = spawn(
            ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)],
            env,
            log,
        )
        wait_for_http(self.url, self.process, log, timeout=30)

        # `serve` execs the server it was asked for: the process is that server's main process.
        command = Path(f"/proc/{self.process.pid}/cmdline").read_bytes().split(b"\0")
        expected = {
            "granian": b"webhook.granian_server",
            "gunicorn": b"python:webhook.gunicorn_conf",
        }
        assert expected[env["WASTATUS_SERVER"]] in command

    def worker_pids(self) -> list[int]:
        """The worker processes (the children of the server's main process), once all run."""
        deadline = time.monotonic() + 30
        while True:
            path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            pids = [int(pid) for pid in path.read_text().split()]
            if len(pids) >= self.workers or time.monotonic() > deadline:
                return pids
            time.sleep(0.1)

    def post(self, body: dict | bytes, **headers: str) -> requests.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"X-Hub-Signature-256": sign(raw, APP_SECRET),
                "Content-Type": "application/json", "Connection": "close"}  # fmt: skip
        return requests.post(self.url + "/webhook", data=raw, headers=sent | headers, timeout=10)

    def status(self, body: dict) -> int:
        return self.post(body).status_code

    def scrape(self) -> Scrape:
        response = requests.get(self.url + "/metrics", timeout=10)
        assert response.status_code == 200
        return Scrape(response.text)

    def stop(self) -> None:
        terminate(self.process)


def redis_connections(redis, pids: list[int]) -> dict[int, int]:
    """How many connections each of the processes `pids` has open to `redis`: its clients
    whose address is a local port of a TCP socket the process holds (from /proc)."""
    owner = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    owner[target.removeprefix("socket:[").removesuffix("]")] = pid
    port_owner = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in owner:
                port_owner[int(fields[1].rsplit(":", 1)[1], 16)] = owner[fields[9]]
    found = dict.fromkeys(pids, 0)
    for client in redis.client_list():
        pid = port_owner.get(int(client["addr"].rsplit(":", 1)[1]))
        if pid is not None:
            found[pid] += 1
    return found


@pytest.fixture(params=SERVERS)
def serve_env(request, redis, redis_url, tmp_path):
    return clean_env(
        tmp_path,
        REDIS_URL=redis_url,
        WASTATUS_APP_SECRET=APP_SECRET,
        WASTATUS_LOG_LEVEL="WARNING",
        WASTATUS_GROUP_WAIT="1h",
        WASTATUS_SERVER=request.param,
        TMPDIR=str(tmp_path),
    )


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


class TestServerSetting:
    """WASTATUS_SERVER and WASTATUS_WEB_THREADS are read and checked like every setting."""

    def test_granian_unless_told_otherwise(self):
        assert settings.read({}).server == "granian"
        assert settings.read({"WASTATUS_SERVER": "Gunicorn"}).server == "gunicorn"

    def test_an_unknown_server_or_no_threads_is_refused(self):
        with pytest.raises(settings.SettingsError) as refused:
            settings.read({"WASTATUS_SERVER": "apache", "WASTATUS_WEB_THREADS": "0"})
        assert [problem.split("=")[0] for problem in refused.value.problems] == [
            "WASTATUS_SERVER",
            "WASTATUS_WEB_THREADS",
        ]


class TestMultiprocess:
    """Counts of every worker, dead or alive, in every scrape; nothing stale, nothing twice."""

    def test_two_workers_counts_add_up_in_every_scrape(self, serve_env, tmp_path):
        """Requests served by either worker all show in /metrics, whichever answers."""
        metrics_dir = tmp_path / "prom"
        metrics_dir.mkdir()
        serve_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        server = Server(serve_env)
        try:
            sent = 0
            with ThreadPoolExecutor(8) as pool:
                while sent < 800:
                    codes = list(pool.map(server.status, [cloud_status("delivered")
                                                        for _ in range(40)]))  # fmt: skip
                    assert codes == [200] * 40
                    sent += 40
                    if len(_accepted_by_pid(metrics_dir)) >= 2:
                        break
            per_worker = _accepted_by_pid(metrics_dir)
            assert len(per_worker) == 2, "both workers should have served requests"
            assert sum(per_worker.values()) == sent
            for _ in range(6):  # several scrapes, answered by either worker
                scrape = server.scrape()
                assert scrape.value("wastatus_webhook_requests_total", outcome="accepted") == sent
                assert scrape.value("wastatus_statuses_total", status="delivered") == sent
        finally:
            server.stop()

    def test_counts_of_a_killed_worker_survive_its_restart(self, serve_env, tmp_path):
        """The server replaces a SIGKILLed worker; what the dead one counted is still reported."""
        metrics_dir = tmp_path / "prom"
        metrics_dir.mkdir()
        serve_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        server = Server(serve_env)
        try:
            for _ in range(20):
                assert server.status(cloud_status("sent")) == 200
            victim = max(_accepted_by_pid(metrics_dir).items(), key=lambda item: item[1])[0]
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while True:  # the replacement answers once the server has started it
                try:
                    if server.scrape().value("wastatus_statuses_total", status="sent") == 20:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("the dead worker's counts were lost")
                time.sleep(0.2)
            assert server.status(cloud_status("sent")) == 200
            assert server.scrape().value("wastatus_statuses_total", status="sent") == 21
        finally:
            server.stop()

    def test_serve_makes_and_removes_its_own_metrics_dir(self, serve_env, tmp_path):
        """Without PROMETHEUS_MULTIPROC_DIR, serve counts in a private dir it removes on exit."""
        server = Server(serve_env)
        try:
            made = list(tmp_path.glob("wastatus-metrics-*"))
            assert len(made) == 1
            assert server.status(cloud_status("read")) == 200
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
                assert server.status(cloud_status(code=code)) == 200
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

    def test_a_dead_workers_live_gauges_are_forgotten(self, serve_env, tmp_path):
        """A live gauge written by a worker that was then killed is gone once it is replaced."""
        metrics_dir = tmp_path / "prom"
        metrics_dir.mkdir()
        serve_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        server = Server(serve_env)
        try:
            victim = server.worker_pids()[0]
            _write_live_gauge(metrics_dir / f"gauge_livesum_{victim}.db", 3)
            assert server.scrape().value("wastatus_test_live") == 3
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while (metrics_dir / f"gauge_livesum_{victim}.db").exists():
                if time.monotonic() > deadline:
                    pytest.fail("the dead worker's live gauge was kept")
                time.sleep(0.2)
            _wait_for(lambda: victim not in server.worker_pids() and _answers(server))
            assert not server.scrape().has("wastatus_test_live")
        finally:
            server.stop()

    def test_a_file_not_yet_sized_does_not_fail_the_scrape(self, serve_env, tmp_path):
        """A worker's metrics file caught between its creation and its sizing (empty) is
        skipped: the scrape still answers 200 with the other counts (it was a 500)."""
        metrics_dir = tmp_path / "prom"
        metrics_dir.mkdir()
        serve_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        server = Server(serve_env)
        try:
            assert server.status(cloud_status("sent")) == 200
            # a worker being born: marked as the server's, its file opened and still empty
            (metrics_dir / "web_999999").touch()
            (metrics_dir / "counter_999999.db").touch()
            scrape = server.scrape()
            assert scrape.value("wastatus_webhook_requests_total", outcome="accepted") == 1
        finally:
            server.stop()

    def test_files_of_an_earlier_run_are_removed_at_start(self, serve_env, tmp_path):
        """Counts left in the directory by a run before (a crash, a restart) do not count."""
        metrics_dir = tmp_path / "prom"
        metrics_dir.mkdir()
        (metrics_dir / "web_999999").touch()
        key = mmap_key("wastatus_webhook_requests_total", "wastatus_webhook_requests_total",
                       ["outcome"], ["accepted"], "stale")  # fmt: skip
        stale = MmapedDict(str(metrics_dir / "counter_999999.db"))
        stale.write_value(key, 7.0, 0.0)
        stale.close()
        serve_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        server = Server(serve_env)
        try:
            assert not (metrics_dir / "counter_999999.db").exists()
            assert server.status(cloud_status("sent")) == 200
            scrape = server.scrape()
            assert scrape.value("wastatus_webhook_requests_total", outcome="accepted") == 1
        finally:
            server.stop()


def _write_live_gauge(path: Path, value: float) -> None:
    """A file as prometheus_client writes it for a Gauge(multiprocess_mode="livesum")."""
    key = mmap_key("wastatus_test_live", "wastatus_test_live", [], [], "A live gauge.")
    gauge = MmapedDict(str(path))
    gauge.write_value(key, value, 0.0)
    gauge.close()


def _answers(server: Server) -> bool:
    try:
        return server.status(cloud_status("sent")) == 200
    except requests.RequestException:
        return False


def _wait_for(condition, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("the server did not get there in time")
        time.sleep(0.2)


def _failed_body() -> bytes:
    return json.dumps(cloud_status("failed")).encode()


def _signed_head(body: bytes, length: int | None = None) -> bytes:
    """The head of a signed POST /webhook for `body` (its length unless `length` is given)."""
    return (
        f"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Hub-Signature-256: {sign(body, APP_SECRET)}\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\nConnection: close\r\n\r\n"
    ).encode()


def _reply(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


class TestShutdown:
    """SIGTERM: requests in flight are finished and stored, then the server exits cleanly."""

    def test_a_request_in_flight_is_answered_and_stored(self, serve_env, redis):
        server = Server(serve_env)
        try:
            body = _failed_body()
            with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
                sock.sendall(_signed_head(body) + body[:40])
                time.sleep(0.5)  # the worker has the request and waits for the rest of its body
                server.process.send_signal(signal.SIGTERM)
                time.sleep(1.0)
                assert server.process.poll() is None, "the server quit with a request in flight"
                sock.sendall(body[40:])
                reply = _reply(sock)
            assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
            assert b'"stored":1' in reply
            assert redis.llen(intake.INBOX) == 1
            assert server.process.wait(25) == 0
        finally:
            server.stop()


class TestHostileRequests:
    """The body limit holds for both framings, and no request gets a 500."""

    def test_a_chunked_body_over_the_limit_gets_413(self, serve_env):
        serve_env["WASTATUS_MAX_BODY"] = "65536"
        server = Server(serve_env)
        try:
            body = _failed_body()
            head = _signed_head(body).replace(
                f"Content-Length: {len(body)}".encode(), b"Transfer-Encoding: chunked"
            )
            chunk = b"%x\r\n%s\r\n" % (16384, b" " * 16384)
            with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
                sock.sendall(head)
                try:
                    for _ in range(64):  # 1 MiB: far past the limit, never ended
                        sock.sendall(chunk)
                except OSError:  # the server answered and closed before reading it all
                    pass
                reply = _reply(sock)
            assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
            assert b"body-too-large" in reply
            assert server.status(cloud_status("sent")) == 200
        finally:
            server.stop()

    def test_a_declared_length_over_the_limit_gets_413_unread(self, serve_env):
        serve_env["WASTATUS_MAX_BODY"] = "65536"
        server = Server(serve_env)
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
                sock.sendall(_signed_head(b"{}", length=1 << 30))  # no body follows
                reply = _reply(sock)
            assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        finally:
            server.stop()

    def test_no_request_gets_a_500(self, serve_env):
        server = Server(serve_env)
        bodies = [b"", b"{", b"[]", b"null", b'{"object": 1}', b"\xff\xfe", b'{"entry": [1]}',
                  json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": 5}]})
                  .encode()]  # fmt: skip
        try:
            for body in bodies:
                assert server.post(body).status_code < 500, body
                assert server.post(body, **{"X-Hub-Signature-256": "sha256=00"}).status_code == 401
            for query in ("", "?hub.mode=subscribe", "?hub.mode=subscribe&hub.verify_token=%ff"):
                assert requests.get(server.url + "/webhook" + query, timeout=10).status_code < 500
            assert requests.put(server.url + "/webhook", timeout=10).status_code == 405
        finally:
            server.stop()


class TestRedisDown:
    """Without Redis a failure is refused with 503 (Meta delivers it again); the rest is 200."""

    def test_failed_status_gets_503_and_others_200(self, serve_env):
        serve_env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
        serve_env["WASTATUS_REDIS_CONNECT_TIMEOUT"] = "0.2"
        server = Server(serve_env)
        try:
            reply = server.post(cloud_status("failed"))
            assert reply.status_code == 503
            assert reply.headers["Retry-After"] == "5"
            assert server.status(cloud_status("delivered")) == 200
        finally:
            server.stop()


class TestRequestLog:
    """The request log comes out of the server's workers: one JSON line per logged request."""

    def test_a_stored_failure_is_logged(self, serve_env, tmp_path):
        log = tmp_path / "server.log"
        serve_env["WASTATUS_LOG_REQUESTS"] = "failures"
        serve_env["WASTATUS_LOG_LEVEL"] = "INFO"
        server = Server(serve_env, log=log)
        try:
            assert server.status(cloud_status("failed")) == 200
        finally:
            server.stop()
        lines = [json.loads(line) for line in log.read_text().splitlines()
                 if line.startswith("{") and '"http.request"' in line]  # fmt: skip
        posts = [line for line in lines if line.get("path") == "/webhook"]
        assert len(posts) == 1
        assert posts[0]["status"] == 200
        assert posts[0]["stored"] == 1


class TestConcurrency:
    """Requests that overlap in one process (granian's threads) are each answered and stored."""

    def test_concurrent_failures_are_all_stored_and_counted(self, serve_env, redis):
        """400 failed statuses from 16 threads after 40 from one: each answered 200, stored and
        counted; under granian a worker opened Redis connections beyond those it needed for
        the requests one at a time, so requests overlapped in one process."""
        serve_env["WASTATUS_FUNNEL_FLUSH"] = "60"  # no funnel flush takes a connection meanwhile
        server = Server(serve_env)
        try:
            one_by_one = [cloud_status("failed", code=131049) for _ in range(40)]
            assert [server.status(body) for body in one_by_one] == [200] * 40
            pids = server.worker_pids()
            serial = redis_connections(redis, pids)
            bodies = [cloud_status("failed", code=131049 + n % 3) for n in range(400)]
            with ThreadPoolExecutor(16) as pool:
                codes = list(pool.map(server.status, bodies))
            assert codes == [200] * len(bodies)
            total = len(bodies) + len(one_by_one)
            assert redis.llen(intake.INBOX) == total
            scrape = server.scrape()
            assert scrape.value("wastatus_events_stored_total", result="stored") == total
            assert scrape.value("wastatus_statuses_total", status="failed") == total
            if serve_env["WASTATUS_SERVER"] == "granian":
                # A process's pool opens a connection only when all of its own are in use.
                overlapped = redis_connections(redis, pids)
                assert any(overlapped[pid] > serial[pid] > 0 for pid in pids), (serial, overlapped)
        finally:
            server.stop()
