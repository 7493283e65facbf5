"""A Redis outage under traffic: the workers wait it out, and every failure is alerted once.

Real processes throughout: an external redis-server (stopped with SIGTERM, then started again on
the same port and data), `wastatus serve` and `wastatus worker` or `wastatus up` as
subprocesses, real HTTP, and a loopback alert receiver. Failures are posted like Meta posts
them, one every 0.1 s, and those not answered 200 are delivered again after the outage.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis as redis_lib
import requests
from rq import Worker
from rq.serializers import JSONSerializer

from bench._receiver import Receiver, Reply
from tests.processes import (
    clean_env,
    descendants,
    spawn,
    terminate,
    wait_for_http,
    wait_until_gone,
)
from webhook.cli.redis_server import RedisServer, free_port, redis_server_binary
from workers.outcomes import ledger

TOKEN = "outage-onprem-token"
OUTAGE_SECONDS = 10.0
SYSTEM_ENV = {
    "WASTATUS_ONPREM_TOKEN": TOKEN,
    "WASTATUS_VERIFY_TOKEN": "outage-verify",
    "WASTATUS_GROUP_WAIT": "0",
    "WASTATUS_GROUP_INTERVAL": "1",
    "WASTATUS_ALERT_RETRY_BASE": "0.2",
    "WASTATUS_ALERT_RETRY_MAX": "1",
    "WASTATUS_DRAIN_LEASE": "2",
    "WASTATUS_DRAIN_SECONDS": "2",
    "WASTATUS_WORKER_MAINTENANCE": "2",
    "WASTATUS_WORKER_TTL": "20",
    "WASTATUS_REDIS_CONNECT_TIMEOUT": "0.5",
    "WASTATUS_REDIS_TIMEOUT": "2",
    "WEB_CONCURRENCY": "1",
}
"""Short waits, so what an outage interrupted is taken up again within seconds (bare seconds:
some settings are not read through `workers.settings` yet)."""


def failure(n: int) -> bytes:
    """An On-Premises webhook with one failed status of its own message and recipient."""
    status = {"id": f"gBOUTAGE{n:06d}", "recipient_id": f"8190{n:08d}", "status": "failed",
              "timestamp": str(1700000000 + n), "errors": [{"code": 470}]}  # fmt: skip
    return json.dumps({"statuses": [status]}).encode()


@dataclass
class Meta:
    """Posts a new failure every 0.1 s, like Meta, and keeps every answer: (when, n, status)."""

    base: str
    answers: list[tuple[float, int, int]] = field(default_factory=list)
    sent: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def post(self, n: int) -> int:
        try:
            reply = requests.post(
                f"{self.base}/webhook",
                data=failure(n),
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=5,
            )
        except requests.RequestException:
            status = 0
        else:
            status = reply.status_code
        self.answers.append((time.monotonic(), n, status))
        return status

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.post(self.sent)
            self.sent += 1

    def start(self) -> Meta:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def redeliver(self, timeout: float = 30) -> None:
        """Post again every failure never answered 200, until it is (Meta retries for days)."""
        acked = {n for _, n, status in self.answers if status == 200}
        deadline = time.monotonic() + timeout
        for n in sorted(set(range(self.sent)) - acked):
            while self.post(n) != 200:
                assert time.monotonic() < deadline, f"failure {n} never answered 200"
                time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL the group after 30 s; every descendant must be gone."""
    family = descendants(process.pid)
    terminate(process)
    assert wait_until_gone(family) == []


@pytest.fixture
def outage_env(tmp_path: Path) -> Iterator[tuple[dict[str, str], RedisServer, Receiver]]:
    """An external Redis of the test's own, an alert receiver, and the environment for both."""
    server = RedisServer(tmp_path / "redis").start()
    receiver = Receiver().start()
    env = clean_env(
        tmp_path, **SYSTEM_ENV, REDIS_URL=server.url, WASTATUS_ALERT_WEBHOOK_URL=receiver.url
    )
    yield env, server, receiver
    receiver.stop()
    server.stop()


@dataclass
class Outage:
    """When Redis was stopped and started again, by the test's clock."""

    stopped: float
    restarted: float
    restarted_at: float
    """Wall clock, to compare with the workers' log lines."""


def outage_under_traffic(meta: Meta, server: RedisServer, receiver: Receiver) -> Outage:
    """3 s of traffic, Redis stopped (SIGTERM) for OUTAGE_SECONDS, 3 s more, then redelivery.

    The alert receiver answers slowly (2 s) around the stop, so a delivery job is likely in
    the middle of its POST, in a work horse, when Redis goes away."""
    meta.start()
    time.sleep(2)
    receiver.default = Reply(delay=2.0)
    time.sleep(1)
    stopped = time.monotonic()
    server.stop()
    time.sleep(OUTAGE_SECONDS)
    receiver.default = Reply()
    server.start()
    restarted, restarted_at = time.monotonic(), time.time()
    time.sleep(3)
    meta.stop()
    meta.redeliver()
    return Outage(stopped, restarted, restarted_at)


def alerted(receiver: Receiver) -> tuple[int, int]:
    """Events counted by the distinct notifications received, and how many copies were extra."""
    notifications = {}
    for request in receiver.requests:
        body = request.json()
        notifications[body["id"]] = body["new"]
    return sum(notifications.values()), len(receiver.requests) - len(notifications)


def wait_until_alerted(client: redis_lib.Redis, expected: int, timeout: float = 40) -> float:
    """Seconds until the ledger holds `expected` outcomes; fails the test after `timeout`."""
    started = time.monotonic()
    while (total := ledger.summary(client)["total"]) < expected:
        if time.monotonic() - started > timeout:
            pytest.fail(f"{total} of {expected} failures have an outcome after {timeout} s")
        time.sleep(0.2)
    return time.monotonic() - started


def check_books(meta: Meta, outage: Outage, server: RedisServer, receiver: Receiver) -> dict:
    """Every answer 200 or 503, 503 all through the outage, and each failure alerted once."""
    statuses = {status for _, _, status in meta.answers}
    assert statuses <= {200, 503}, statuses
    during = [
        status
        for when, _, status in meta.answers
        if outage.stopped + 0.5 < when < outage.restarted - 0.5
    ]
    assert during and set(during) == {503}
    assert {status for when, _, status in meta.answers if when < outage.stopped} == {200}
    client = redis_lib.Redis.from_url(server.url)
    try:
        drained = wait_until_alerted(client, meta.sent)
        time.sleep(1.5)  # a second outcome or a late copy would land by now
        summary = ledger.summary(client)
    finally:
        client.close()
    assert summary["outcomes"] == {**{name: 0 for name in ledger.OUTCOMES}, "alerted": meta.sent}
    assert summary["total"] == meta.sent and summary["conflicts"] == 0
    events, extra_copies = alerted(receiver)
    assert events == meta.sent
    return {"failures": meta.sent, "drained_after_s": round(drained, 1), "copies": extra_copies}


def log_lines(path: Path, event: str) -> list[dict]:
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("{") and f'"event":"{event}"' in line:
            lines.append(json.loads(line))
    return lines


def resumed(log: Path, outage: Outage) -> dict:
    """What was measured: seconds from Redis started again to the worker reconnected, and to
    its first job finished after that."""
    back = log_lines(log, "redis.reachable")[0]["ts"]
    jobs = [line["ts"] for line in log_lines(log, "job.finished") if line["ts"] > back]
    return {
        "reconnected_after_s": round(back - outage.restarted_at, 2),
        "first_job_after_s": round(jobs[0] - outage.restarted_at, 2) if jobs else None,
    }


class TestLoneWorker:
    """A lone `wastatus worker` waits out a 10 s Redis outage and loses and doubles nothing."""

    def test_outage_under_traffic(self, outage_env, tmp_path):
        """Answers are 200 before and after and 503 during; each failure is alerted once; the
        worker never exits and says once that Redis is gone and once that it is back."""
        env, server, receiver = outage_env
        port = free_port()
        web_log, worker_log = tmp_path / "web.log", tmp_path / "worker.log"
        web = spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], env, web_log)
        worker = spawn(["worker"], env, worker_log)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_http(base, web, web_log)
            meta = Meta(base)
            outage = outage_under_traffic(meta, server, receiver)
            books = check_books(meta, outage, server, receiver)
            assert worker.poll() is None, worker_log.read_text()[-3000:]
        finally:
            stop(worker)
            stop(web)
        assert worker.returncode == 0
        gone = log_lines(worker_log, "redis.unreachable")
        back = log_lines(worker_log, "redis.reachable")
        assert len(gone) == 1 and len(back) == 1, worker_log.read_text()[-3000:]
        assert "quitting" not in worker_log.read_text()
        print(f"\nlone worker: {books}, {resumed(worker_log, outage)}")


def busy_with(client: redis_lib.Redis, functions: set[str], timeout: float = 20) -> None:
    """Wait until some RQ worker runs a job of one of `functions` (in its work horse)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in Worker.all(connection=client, serializer=JSONSerializer):
            job = worker.get_current_job() if worker.get_state() == "busy" else None
            if job is not None and job.func_name in functions:
                return
        time.sleep(0.02)
    pytest.fail(f"no worker ran {functions} within {timeout} s")


class TestWorkHorseInFlight:
    """A job in its work horse when Redis goes away ends, and its work is taken up again."""

    def test_delivery_held_through_the_outage_is_recorded_once(self, outage_env, tmp_path):
        """A delivery whose receiver answers 200 after Redis went away: the worker waits for
        the horse and for Redis, RQ reruns the job, and the failure is alerted exactly once
        (a second copy of the same notification id is allowed: at-least-once, same id)."""
        env, server, receiver = outage_env
        port = free_port()
        web_log, worker_log = tmp_path / "web.log", tmp_path / "worker.log"
        web = spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], env, web_log)
        worker = spawn(["worker"], env, worker_log)
        client = redis_lib.Redis.from_url(server.url, socket_connect_timeout=0.5)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_http(base, web, web_log)
            receiver.script(Reply(delay=4.0))
            assert Meta(base).post(0) == 200
            # The flush job delivers the group's first notification itself.
            busy_with(
                client,
                {"workers.alerting.groups.flush_group", "workers.alerting.notifications.deliver"},
            )
            server.stop()
            time.sleep(OUTAGE_SECONDS)
            server.start()
            wait_until_alerted(client, 1)
            time.sleep(1.5)
            summary = ledger.summary(client)
            assert summary["outcomes"]["alerted"] == 1 and summary["total"] == 1
            assert summary["conflicts"] == 0
            events, copies = alerted(receiver)
            assert events == 1
            assert worker.poll() is None
        finally:
            client.close()
            stop(worker)
            stop(web)
        text = worker_log.read_text()
        assert len(log_lines(worker_log, "redis.unreachable")) == 1, text[-3000:]
        assert "quitting" not in text
        print(f"\nin flight: {copies} extra copies of the notification")


class TestUp:
    """`wastatus up` with REDIS_URL keeps serving through a Redis outage and its worker lives."""

    def test_outage_under_traffic(self, outage_env, tmp_path):
        """The web server answers throughout (503 while Redis is away), no child is restarted,
        and every failure answered 200 before, during or after is alerted exactly once."""
        env, server, receiver = outage_env
        port = free_port()
        log = tmp_path / "up.log"
        up = spawn(["up", "--port", str(port)], env, log)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_http(base, up, log)
            meta = Meta(base)
            outage = outage_under_traffic(meta, server, receiver)
            books = check_books(meta, outage, server, receiver)
            assert up.poll() is None, log.read_text()[-3000:]
        finally:
            stop(up)
        assert up.returncode == 0
        text = log.read_text()
        assert "started again" not in text and "quitting" not in text, text[-3000:]
        assert len(log_lines(log, "redis.unreachable")) == 1, text[-3000:]
        print(f"\nup: {books}, {resumed(log, outage)}")


class TestWorkerWithoutRedis:
    """A worker that meets no Redis waits for it, and still stops when told to."""

    def test_a_burst_worker_started_during_an_outage_drains_once_redis_is_back(
        self, outage_env, tmp_path
    ):
        """`worker --burst` started while Redis is down waits (one log line), then empties the
        queues once Redis is back, and exits 0: a burst run's promise is to drain."""
        env, server, receiver = outage_env
        port = free_port()
        web_log = tmp_path / "web.log"
        web = spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], env, web_log)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_http(base, web, web_log)
            meta = Meta(base)
            assert [meta.post(n) for n in range(3)] == [200, 200, 200]
            server.stop()
            log = tmp_path / "burst.log"
            burst = spawn(["worker", "--burst"], env, log)
            time.sleep(3)
            assert burst.poll() is None
            server.start()
            assert burst.wait(60) == 0, log.read_text()[-3000:]
        finally:
            stop(web)
        assert len(log_lines(log, "redis.unreachable")) == 1, log.read_text()[-3000:]
        client = redis_lib.Redis.from_url(server.url)
        try:
            assert ledger.summary(client)["outcomes"]["alerted"] == 3
        finally:
            client.close()
        assert alerted(receiver)[0] == 3

    def test_sigterm_stops_a_worker_waiting_for_redis(self, outage_env, tmp_path):
        """With Redis gone, SIGTERM still stops the worker and its scheduler within seconds."""
        env, server, _ = outage_env
        log = tmp_path / "worker.log"
        worker = spawn(["worker"], env, log)
        deadline = time.monotonic() + 30
        while "Listening on" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        family = descendants(worker.pid)
        server.stop()
        time.sleep(2)
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0, log.read_text()[-3000:]
        assert wait_until_gone(family) == []
        print(f"\nstopped {time.monotonic() - started:.1f} s after SIGTERM without Redis")


@pytest.fixture
def failover(tmp_path):
    """A master, its replica and one sentinel (quorum 1, 1 s to call the master down)."""
    master = RedisServer(tmp_path / "master").start()
    replica = RedisServer(tmp_path / "replica").start()
    servers = [master, replica]
    sentinel_port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
        "sentinel down-after-milliseconds mymaster 1000\n"
        "sentinel failover-timeout mymaster 5000\n"
    )
    sentinel = None
    try:
        with redis_lib.Redis(port=replica.port) as client:
            client.replicaof("127.0.0.1", master.port)
            deadline = time.monotonic() + 10
            while client.info("replication").get("master_link_status") != "up":
                assert time.monotonic() < deadline, "the replica did not catch up"
                time.sleep(0.05)
        sentinel = subprocess.Popen(
            [redis_server_binary(), str(conf), "--sentinel"], stdout=subprocess.DEVNULL
        )
        with redis_lib.Redis(port=sentinel_port, socket_connect_timeout=0.5) as client:
            deadline = time.monotonic() + 15
            while True:
                try:
                    if client.sentinel_slaves("mymaster"):
                        break
                except redis_lib.ConnectionError:
                    pass
                assert time.monotonic() < deadline, "the sentinel did not see the replica"
                time.sleep(0.1)
        yield master, replica, sentinel_port
    finally:
        if sentinel is not None:
            sentinel.terminate()
            sentinel.wait(10)
        for server in servers:
            server.stop()


class TestSentinelFailover:
    """Through Sentinel, a worker follows the master to the replica promoted in its place."""

    def test_the_worker_works_on_the_new_master(self, failover, receiver, tmp_path):
        """SIGKILL the master: the sentinel promotes the replica, the worker (which asks the
        sentinels again at each reconnection) alerts the failures posted after the failover."""
        master, replica, sentinel_port = failover
        env = clean_env(
            tmp_path,
            **SYSTEM_ENV,
            WASTATUS_REDIS_SENTINELS=f"127.0.0.1:{sentinel_port}",
            WASTATUS_REDIS_SENTINEL_MASTER="mymaster",
            WASTATUS_ALERT_WEBHOOK_URL=receiver.url,
        )
        port = free_port()
        web_log, worker_log = tmp_path / "web.log", tmp_path / "worker.log"
        web = spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], env, web_log)
        worker = spawn(["worker"], env, worker_log)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_http(base, web, web_log)
            meta = Meta(base)
            assert meta.post(0) == 200
            deadline = time.monotonic() + 20
            while alerted(receiver)[0] < 1:
                assert time.monotonic() < deadline, "the first failure was not alerted"
                time.sleep(0.1)
            master.kill()
            killed = time.monotonic()
            meta.sent = 1
            while meta.post(1) != 200:
                assert time.monotonic() - killed < 30, "no new master within 30 s"
                time.sleep(0.2)
            promoted = time.monotonic() - killed
            with redis_lib.Redis(port=replica.port) as client:
                assert client.info("replication")["role"] == "master"
                wait_until_alerted(client, 2)
            assert alerted(receiver)[0] == 2
            assert worker.poll() is None
        finally:
            stop(worker)
            stop(web)
        print(f"\nfailover: the web took failures again {promoted:.1f} s after the kill")


class TestDemotedMaster:
    """A worker whose Redis becomes a replica (READONLY) waits until it takes writes again."""

    def test_the_worker_waits_while_its_redis_is_read_only(self, outage_env, tmp_path):
        """REPLICAOF another server for 5 s, then REPLICAOF NO ONE: the worker did not quit,
        and a failure posted afterwards is alerted."""
        env, server, receiver = outage_env
        other = RedisServer(tmp_path / "other").start()
        port = free_port()
        web_log, worker_log = tmp_path / "web.log", tmp_path / "worker.log"
        web = spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], env, web_log)
        worker = spawn(["worker"], env, worker_log)
        client = redis_lib.Redis.from_url(server.url)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_http(base, web, web_log)
            meta = Meta(base)
            assert meta.post(0) == 200
            wait_until_alerted(client, 1)
            client.replicaof("127.0.0.1", other.port)
            time.sleep(5)
            client.replicaof("NO", "ONE")
            while meta.post(1) != 200:  # the replica's copy of `other` is empty: 1 is new
                time.sleep(0.2)
            wait_until_alerted(client, 1)
            assert worker.poll() is None, worker_log.read_text()[-3000:]
        finally:
            client.close()
            stop(worker)
            stop(web)
            other.stop()
        assert "quitting" not in worker_log.read_text()
        assert alerted(receiver)[0] == 2
