"""Soak and chaos: drive signed webhooks through the whole system while breaking it, then
check that the books balance.

It runs, on 127.0.0.1 only, a real append-only redis-server, `wastatus serve` as the Procfile
runs it, N `wastatus worker` processes, and two endpoints of its own (the alert receiver and
the resend endpoint). For `--duration` seconds it posts webhooks at `--rate` (failed and other
statuses, Cloud and On-Premises, duplicates, late statuses, batches, malformed and
unauthenticated bodies) and, like Meta, retries every delivery not answered 200. Meanwhile it
restarts Redis, stops it for a while, SIGKILLs workers in the middle of a job and makes the
receivers answer 500, 429 with Retry-After, or hang past the client's timeout. Then it waits for
the system to drain and checks the ledger (`workers.outcomes.ledger`): every failed status
answered 200 has exactly one outcome, nothing else is in it, unauthenticated requests left no
trace, no answer was a 500. Exit status 0 when everything balances, 1 when not.

    .venv/bin/python -m bench.chaos --duration 60 [--rate 40] [--workers 2] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import redis
from rq import Worker
from rq.exceptions import NoSuchJobError
from rq.serializers import JSONSerializer

from bench._payloads import status_item
from bench._receiver import Receiver, fault_reply
from bench._servers import Served, children, wait_http
from bench._traffic import MAX_BODY, RULES, UNAUTH_MARKER, Send, Traffic, failure_id
from bench.loadgen import percentile, send
from webhook import quarantine
from webhook.cli.redis_server import RedisServer, free_port
from workers.inbox import intake
from workers.outcomes import ledger

SECRET = "chaos-app-secret"
TOKEN = "chaos-onprem-token"
PROGRESS_SECONDS = 5.0
HTTP_TIMEOUT = 1.0
"""The workers' timeout for receivers and the resend endpoint; a `hang` outlasts it."""
SYSTEM_ENV = {
    "WASTATUS_GROUP_WAIT": "1s",
    "WASTATUS_GROUP_INTERVAL": "2s",
    "WASTATUS_REPEAT_INTERVAL": "1h",
    "WASTATUS_RETRY_ATTEMPTS": "4",
    "WASTATUS_RETRY_BASE_DELAY": "0.5s",
    "WASTATUS_RETRY_MAX_DELAY": "2s",
    "WASTATUS_ALERT_ATTEMPTS": "4",
    "WASTATUS_ALERT_RETRY_BASE": "0.5",
    "WASTATUS_ALERT_RETRY_MAX": "2",
    "WASTATUS_HTTP_TIMEOUT": str(HTTP_TIMEOUT),
    "WASTATUS_DRAIN_LEASE": "5",
    "WASTATUS_MAX_BODY": str(MAX_BODY),
    "WASTATUS_DRAIN_SECONDS": "5",
    "WASTATUS_REDIS_CONNECT_TIMEOUT": "0.5",
    "WASTATUS_REDIS_TIMEOUT": "2",
    "WASTATUS_WORKER_MAINTENANCE": "5",
    "WASTATUS_WORKER_TTL": "20",
}
"""Short waits, intervals and retry delays so the system drains within seconds of the load."""


@dataclass
class Fault:
    """One planned fault: at `at` (share of the duration), for `length` (share), what."""

    at: float
    length: float
    name: str


PLANS = {
    "full": (
        Fault(0.03, 0.07, "alert-receiver-500"),
        Fault(0.05, 0.07, "resend-429"),
        Fault(0.11, 0.07, "alert-receiver-hang"),
        Fault(0.14, 0.06, "resend-500"),
        Fault(0.19, 0.06, "alert-receiver-429"),
        Fault(0.22, 0.05, "resend-hang"),
        Fault(0.30, 0.0, "kill-worker"),
        Fault(0.35, 0.0, "redis-restart"),
        Fault(0.40, 0.08, "redis-down"),
        Fault(0.50, 0.0, "kill-drain-worker"),
        Fault(0.55, 0.10, "resend-storm"),
        Fault(0.58, 0.0, "kill-sender-worker"),
    ),
    "up": (
        Fault(0.05, 0.0, "kill-worker"),
        Fault(0.25, 0.0, "redis-restart"),
        Fault(0.45, 0.25, "redis-down"),
    ),
    "smoke": (
        Fault(0.10, 0.15, "alert-receiver-500"),
        Fault(0.20, 0.0, "kill-drain-worker"),
        Fault(0.30, 0.15, "resend-429"),
        Fault(0.50, 0.10, "alert-receiver-hang"),
        Fault(0.65, 0.10, "resend-500"),
    ),
}
"""The faults of a run, in order, scaled to its duration. `full` has every fault of issue 6:
receivers fail first, while RQ's scheduler runs (group flushes and retries are scheduled jobs,
so the failures are met); the kills and Redis faults come after, since each can stop the
scheduler for up to 61 s (its lock outlives its process) and the run drains after that. Then a
resend storm (`Harness.resend_storm`), during which a worker is killed in a sender job.
`smoke` keeps to faults that do not stop the scheduler (a worker killed mid-drain that does not
run it, receivers failing), so it drains in seconds. `up` runs the service as `wastatus up` with
REDIS_URL (`UpHarness`): up's worker SIGKILLed first (the scheduler lock it leaves lasts 61 s,
so it expires during the load), then Redis restarted, then stopped for a while; nothing but
`up` itself starts anything again."""


@dataclass
class Tally:
    """What the driver saw: answers, latencies, and which failures were acknowledged."""

    attempts: int = 0
    deliveries: Counter = field(default_factory=Counter)
    answers: Counter = field(default_factory=Counter)
    latencies: list[tuple[float, bool]] = field(default_factory=list)
    acked: set[str] = field(default_factory=set)
    acked_at: dict[str, tuple[float, str]] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)
    unauthenticated: set[str] = field(default_factory=set)
    unauthenticated_answers: Counter = field(default_factory=Counter)
    malformed_acked: int = 0
    too_large: set[str] = field(default_factory=set)
    too_large_answers: Counter = field(default_factory=Counter)
    retrying: int = 0
    gave_up: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    health: dict[str, str] = field(default_factory=dict)
    """Health event ids answered 200 → problem, recovery or benign."""


def _raw(item: Send) -> bytes:
    lines = ["POST /webhook HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in item.headers.items()]
    lines += [f"Content-Length: {len(item.body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + item.body


class Harness:
    """Owns every process and endpoint of one run; `run()` returns the report."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.redis_server = RedisServer(workdir / "redis")
        self.alert = Receiver()
        self.resend = Receiver()
        self.web: Served | None = None
        self.workers: dict[str, subprocess.Popen] = {}
        self.worker_serial = 0
        self.worker_exits = 0
        self.killed: list[dict] = []
        self.active: set[str] = set()
        self.fault_log: list[dict] = []
        self.tally = Tally()
        self.started = 0.0
        self.stopping = False
        self.client: redis.Redis | None = None
        self.final_ledger: dict[str, str] = {}
        self.traffic: Traffic | None = None

    # processes ---------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **SYSTEM_ENV,
            "REDIS_URL": self.redis_server.url,
            "WASTATUS_APP_SECRET": SECRET,
            "WASTATUS_ONPREM_TOKEN": TOKEN,
            "WASTATUS_DATA_DIR": str(self.workdir / "data"),
            "WASTATUS_RULES": str(self.workdir / "rules.yaml"),
            "WASTATUS_RETRY_URL": self.resend.url + "/resend",
            "WASTATUS_ALERT_WEBHOOK_URL": self.alert.url + "/alerts",
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }

    def start_outside(self) -> None:
        """What every plan runs around wastatus: the rules file, Redis and both endpoints."""
        (self.workdir / "rules.yaml").write_text(RULES)
        self.redis_server.start()
        self.client = redis.Redis.from_url(
            self.redis_server.url, socket_timeout=2, socket_connect_timeout=0.5
        )
        self.alert.start()
        self.resend.start()

    def stop_outside(self) -> None:
        self.alert.stop()
        self.resend.stop()
        if self.client is not None:
            self.client.close()
        self.redis_server.stop()

    def start(self) -> None:
        self.start_outside()
        self.web = Served(
            "shipped",
            "webhook:create_app()",
            self.env(),
            self.args.web_workers,
            log=self.workdir / "web.log",
        ).start()
        for _ in range(self.args.workers):
            self.spawn_worker()

    def spawn_worker(self) -> None:
        self.worker_serial += 1
        name = f"chaos-{os.getpid()}-{self.worker_serial}"
        log = (self.workdir / f"{name}.log").open("ab")
        self.workers[name] = subprocess.Popen(
            [sys.executable, "-m", "webhook.cli", "worker", "--name", name],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # its own process group (its work horse makes one of its own)
        )

    def stop(self) -> None:
        self.stopping = True
        for process in self.workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.workers.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self.web is not None:
            self.web.stop()
        self.stop_outside()

    async def supervise(self) -> None:
        """Start a replacement for any worker that exited, as a process manager would."""
        while not self.stopping:
            for name, process in list(self.workers.items()):
                if process.poll() is not None:
                    del self.workers[name]
                    self.worker_exits += 1
                    self.spawn_worker()
            await asyncio.sleep(0.5)

    # faults --------------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def note(self, name: str, detail: str = "") -> None:
        self.fault_log.append({"t": round(self.elapsed(), 1), "fault": name, "detail": detail})

    async def inject(self) -> None:
        """Start each fault of the plan at its time; windows of different faults may overlap."""
        duration = self.args.duration
        running = []
        for fault in PLANS[self.args.plan]:
            await asyncio.sleep(max(0.0, fault.at * duration - self.elapsed()))
            length = min(15.0, max(2.0, fault.length * duration)) if fault.length else 0.0
            running.append(asyncio.create_task(self.apply(fault.name, length)))
        await asyncio.gather(*running)

    async def apply(self, name: str, length: float) -> None:
        if name == "resend-storm":
            await self.resend_storm(length)
            return
        if name in ("kill-worker", "kill-drain-worker", "kill-sender-worker"):
            only = {
                "kill-drain-worker": "workers.drain.drain_inbox",
                "kill-sender-worker": "workers.resend.sender.send_due",
            }.get(name)
            detail = await asyncio.to_thread(self.kill_busy_worker, only)
            self.note(name, detail)
            return
        if name in ("redis-restart", "redis-down"):
            async with self.redis_lock:  # one Redis fault at a time, whatever the schedule
                self.active.add(name)
                if name == "redis-restart":
                    self.note(name, "SIGTERM, then started again on the same port and data")
                else:
                    self.note(name, f"stopped for {length:.0f} s")
                await asyncio.to_thread(self.redis_server.stop)
                await asyncio.sleep(length)
                await asyncio.to_thread(self.redis_server.start)
                self.active.discard(name)
            return
        endpoint = self.alert if name.startswith("alert") else self.resend
        mode = {"500": "error", "429": "throttle", "hang": "hang"}[name.rsplit("-", 1)[1]]
        self.active.add(name)
        which = "alerts" if endpoint is self.alert else "resend"
        self.note(name, f"{which} endpoint answers {mode} for {length:.0f} s")
        endpoint.default = fault_reply(mode, hang_seconds=HTTP_TIMEOUT * 2)
        await asyncio.sleep(length)
        endpoint.default = fault_reply("ok")
        self.active.discard(name)

    async def resend_storm(self, length: float) -> None:
        """A storm of transient failures: `--storm-size` of them (resent by the harness's
        rules) in batches of 200 statuses, while the resend endpoint first answers 429 with
        Retry-After for a third of `length`, holding every resend back."""
        size = self.args.storm_size
        if not size:
            return
        self.active.add("resend-storm")
        self.note("resend-storm", f"{size} transient failures; resend endpoint 429 at first")
        self.resend.default = fault_reply("throttle")
        deadline = time.monotonic() + self.args.duration + self.args.drain_timeout
        traffic = self.traffic
        sends = []
        for start in range(0, size, 200):
            statuses, expects = [], []
            for _ in range(min(200, size - start)):
                message_id, recipient = traffic._ids()
                statuses.append(
                    status_item(message_id, recipient, "failed", traffic._now(), 131043, "expired")
                )
                expects.append(failure_id(message_id, recipient, 131043))
            sends.append(traffic._signed("storm", statuses, expects))
        posted = [asyncio.create_task(self.deliver(send, deadline)) for send in sends]
        await asyncio.sleep(length / 3)
        self.resend.default = fault_reply("ok")
        await asyncio.gather(*posted)
        await asyncio.sleep(max(0.0, length * 2 / 3))
        self.active.discard("resend-storm")

    def kill_busy_worker(self, only: str | None = None) -> str:
        """SIGKILL the process group of a worker running a job (`only` that function, and then
        not the one running the scheduler); waits up to 5 s for one."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            owner = self._scheduler_owner()
            for name, process in list(self.workers.items()):
                function = self._busy_with(name)
                if function is None or process.poll() is not None:
                    continue
                if only and (function != only or process.pid == owner):
                    continue
                scheduler = process.pid == owner
                self._kill(name, process, function, scheduler)
                return f"{name} killed during a {function} job" + (
                    " (it ran the RQ scheduler)" if scheduler else ""
                )
            time.sleep(0.005)
        return "no worker was busy within 5 s: none killed"

    def _scheduler_owner(self) -> int | None:
        """The pid of the worker whose RQ scheduler holds the lock (its process's parent)."""
        try:
            name = self.client.get("rq:scheduler-lock:wastatus-events")
            pid = name and self.client.hget(b"rq:scheduler:" + name, "pid")
        except redis.RedisError:
            return None
        if not pid:
            return None
        try:
            stat = Path(f"/proc/{int(pid)}/stat").read_text()
        except (OSError, ValueError):
            return None
        return int(stat.rsplit(")", 1)[1].split()[1])

    def _busy_with(self, name: str) -> str | None:
        """The function of the job worker `name` is running, or None when it is idle."""
        try:
            worker = Worker.find_by_key(
                f"rq:worker:{name}", connection=self.client, serializer=JSONSerializer
            )
            if worker is None or worker.get_state() != "busy":
                return None
            job = worker.get_current_job()
        except (redis.RedisError, ValueError, LookupError, NoSuchJobError):
            return None  # NoSuchJobError: the job ended (and was deleted) as we looked
        return job.func_name if job is not None else None

    def _kill(self, name: str, process: subprocess.Popen, function: str, scheduler: bool) -> None:
        # RQ's work horse puts itself in a process group of its own: kill it by pid as well,
        # or the job would run on to its end and nothing would have died mid-job.
        horses = children(process.pid)
        os.killpg(process.pid, signal.SIGKILL)  # the worker and its scheduler
        for pid in horses:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait()
        del self.workers[name]
        self.killed.append({"worker": name, "job": function, "ran_scheduler": scheduler})
        self.spawn_worker()

    # traffic -------------------------------------------------------------------------------

    async def deliver(self, item: Send, deadline: float) -> None:
        """Post `item` until it is answered 200 (or 401 when it must be refused), like Meta."""
        tally = self.tally
        tally.deliveries[item.kind] += 1
        if item.unauthenticated:
            tally.unauthenticated.update(item.expects)
        else:
            tally.sent.update(item.expects)
        raw = _raw(item)
        delay = 0.25
        retrying = False
        try:
            while True:
                during_fault = bool(self.active)
                started = time.perf_counter()
                try:
                    status = await send("127.0.0.1", self.web.port, raw, timeout=10.0)
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                    status = 0
                tally.attempts += 1
                tally.answers[status] += 1
                if status:
                    tally.latencies.append(((time.perf_counter() - started) * 1000, during_fault))
                if item.unauthenticated:
                    tally.unauthenticated_answers[status] += 1
                    if status in (401, 0, 503):
                        if status == 401:
                            return
                    else:
                        tally.unexpected.append(f"unauthenticated delivery answered {status}")
                        return
                elif item.too_large:
                    tally.too_large.update(item.refused)
                    tally.too_large_answers[status] += 1
                    if status == 413:
                        return
                    if status not in (0, 503):
                        tally.unexpected.append(f"oversized delivery answered {status}")
                        return
                elif status == 200:
                    tally.acked.update(item.expects)
                    tally.health.update(item.roles)
                    for event in item.expects:
                        tally.acked_at.setdefault(event, (round(self.elapsed(), 1), item.kind))
                    tally.malformed_acked += item.malformed
                    return
                elif status not in (0, 502, 503, 504):
                    tally.unexpected.append(f"{item.kind} delivery answered {status}")
                    if status != 500:
                        return
                if time.monotonic() > deadline:
                    tally.gave_up.extend(item.expects or [item.kind])
                    return
                if not retrying:
                    retrying = True
                    tally.retrying += 1
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)
        finally:
            if retrying:
                tally.retrying -= 1

    async def drive(self, traffic: Traffic) -> None:
        rate, duration = self.args.rate, self.args.duration
        deadline = time.monotonic() + duration + self.args.drain_timeout
        tasks: set[asyncio.Task] = set()
        n = 0
        while (slot := n / rate) < duration:
            await asyncio.sleep(max(0.0, slot - self.elapsed()))
            task = asyncio.create_task(self.deliver(traffic.next(), deadline))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        if tasks:
            await asyncio.wait(tasks)

    # progress and checks ---------------------------------------------------------------------

    def recorded(self) -> dict[str, str]:
        """The whole ledger: event id → outcome, over every day's hash."""
        found: dict[str, str] = {}
        for key in self.client.scan_iter(match=ledger.DAY_PREFIX + "[0-9]*", count=1000):
            for event, outcome in self.client.hgetall(key).items():
                found.setdefault(ledger.shown(event), outcome.decode())
        return found

    async def progress(self) -> None:
        while not self.stopping:
            await asyncio.sleep(PROGRESS_SECONDS)
            self.say(self.progress_line())

    def progress_line(self) -> str:
        tally = self.tally
        try:
            done = len(tally.acked & self.recorded().keys())
            inbox = self.client.llen(intake.INBOX)
            backlog = f"ledger {done}/{len(tally.acked)}, inbox {inbox}"
        except redis.RedisError:
            backlog = "Redis unreachable"
        answers = ", ".join(
            f"{code or 'no answer'}: {n}" for code, n in sorted(tally.answers.items())
        )
        faults = ", ".join(sorted(self.active)) or "none"
        return (
            f"[{self.elapsed():5.0f}s] posted {tally.attempts} ({answers}); retrying "
            f"{tally.retrying}; faults: {faults}; {backlog}; workers {len(self.workers)} "
            f"up, {len(self.killed)} killed"
        )

    async def wait_drained(self) -> float | None:
        """Seconds until every acknowledged failure has an outcome; None if it never did."""
        started = time.monotonic()
        while time.monotonic() - started < self.args.drain_timeout:
            try:
                if self.tally.acked <= self.recorded().keys():
                    return time.monotonic() - started
            except redis.RedisError:
                pass
            await asyncio.sleep(0.5)
        return None

    def say(self, text: str) -> None:
        if not self.args.quiet:
            print(text, file=sys.stderr, flush=True)

    async def main(self) -> dict:
        self.started = time.monotonic()
        self.redis_lock = asyncio.Lock()
        traffic = self.traffic = Traffic(SECRET, TOKEN, self.args.seed)
        background = [asyncio.create_task(self.supervise()), asyncio.create_task(self.progress())]
        injector = asyncio.create_task(self.inject())
        await self.drive(traffic)
        await injector
        load_seconds = self.elapsed()
        self.say(f"[{self.elapsed():5.0f}s] load done; waiting for the system to drain")
        drain = await self.wait_drained()
        await asyncio.sleep(1.0)  # let late writes (a duplicate outcome, say) land before checking
        report = self.report(load_seconds, drain)
        self.stopping = True
        for task in background:
            task.cancel()
        return report

    def report(self, load_seconds: float, drain: float | None) -> dict:
        tally = self.tally
        recorded = self.final_ledger = self.recorded()
        summary = ledger.summary(self.client)
        expected = tally.acked
        missing = sorted(expected - recorded.keys())
        foreign = sorted(recorded.keys() - expected)
        outcomes = Counter(recorded[event] for event in expected if event in recorded)
        seen_unauth = [
            event
            for event in tally.unauthenticated
            if intake.seen(self.client, event) or event in recorded
        ]
        seen_too_large = [
            event
            for event in tally.too_large
            if intake.seen(self.client, event) or event in recorded
        ]
        quarantined = quarantine.entries(self.client)
        unauth_quarantined = sum(UNAUTH_MARKER.encode() in entry.body for entry in quarantined)
        accepted = self.resend.accepted()
        resent_unseen = [
            event
            for event, outcome in recorded.items()
            if outcome == "resent" and event not in accepted
        ]
        server_errors = {
            code: n for code, n in tally.answers.items() if code >= 500 and code != 503
        }
        health = health_books(tally.health, recorded, self.alert.accepted())
        checks = [
            (
                "every failed status answered 200 has an outcome",
                not missing,
                f"{len(missing)} of {len(expected)} have none",
            ),
            (
                "no event has two outcomes",
                summary["conflicts"] == 0,
                f"{summary['conflicts']} conflicts {summary['conflict_samples'][:3]}",
            ),
            (
                "the ledger holds nothing that was not answered 200",
                not foreign,
                f"{len(foreign)} foreign ids",
            ),
            (
                "the ledger's counts match its entries",
                summary["total"] == len(recorded),
                f"counts say {summary['total']}, entries {len(recorded)}",
            ),
            (
                "unauthenticated requests got 401 and left no trace",
                not seen_unauth
                and not unauth_quarantined
                and set(tally.unauthenticated_answers) <= {401, 0, 503},
                f"{len(seen_unauth)} ids found, {unauth_quarantined} quarantined, answers "
                f"{dict(tally.unauthenticated_answers)}",
            ),
            (
                "bodies over the size limit got 413 and left no trace",
                not seen_too_large and set(tally.too_large_answers) <= {413, 0, 503},
                f"{len(seen_too_large)} ids found, answers {dict(tally.too_large_answers)}",
            ),
            (
                "no answer was a 500",
                not server_errors and not tally.unexpected,
                f"5xx {server_errors}, unexpected {Counter(tally.unexpected).most_common(3)}",
            ),
            (
                "every delivery was answered 200 in the end",
                not tally.gave_up,
                f"{len(tally.gave_up)} given up",
            ),
            (
                "malformed bodies were quarantined once each",
                len(quarantined) == tally.malformed_acked,
                f"{len(quarantined)} quarantined for {tally.malformed_acked} answered 200",
            ),
            (
                "every resent event was accepted by the resend endpoint",
                not resent_unseen,
                f"{len(resent_unseen)} not seen there",
            ),
            *health["checks"],
        ]
        during = [ms for ms, fault in tally.latencies if fault]
        calm = [ms for ms, fault in tally.latencies if not fault]
        everything = [ms for ms, _ in tally.latencies]

        def latency(values: list[float]) -> dict:
            return {
                "count": len(values),
                "p50_ms": round(percentile(values, 0.5), 2),
                "p99_ms": round(percentile(values, 0.99), 2),
            }

        return {
            "duration": self.args.duration,
            "plan": self.args.plan,
            "rate": self.args.rate,
            "workers": self.args.workers,
            "load_seconds": round(load_seconds, 1),
            "drain_seconds": None if drain is None else round(drain, 1),
            "requests": {
                "posted": tally.attempts,
                "deliveries": sum(tally.deliveries.values()),
                "by_kind": dict(tally.deliveries),
                "answers": {
                    str(code or "no answer"): n for code, n in sorted(tally.answers.items())
                },
            },
            "ack_latency": {
                "during_faults": latency(during),
                "calm": latency(calm),
                "all": latency(everything),
            },
            "faults": self.fault_log,
            "workers_killed": self.killed,
            "worker_restarts_after_exit": self.worker_exits,
            "receivers": {"alerts": self.alert.snapshot(), "resend": self.resend.snapshot()},
            "ledger": {
                "failed_statuses_answered_200": len(expected),
                "recorded": len(recorded),
                "outcomes": {name: outcomes.get(name, 0) for name in ledger.OUTCOMES},
                "missing": len(missing),
                "missing_samples": [
                    {"event_id": event, "acked_at": tally.acked_at.get(event)}
                    for event in missing[:10]
                ],
                "foreign": len(foreign),
                "conflicts": summary["conflicts"],
            },
            "health": health["figures"],
            "unauthenticated": {"sent": len(tally.unauthenticated), "traces": len(seen_unauth)},
            "quarantined": len(quarantined),
            "checks": [
                {"check": name, "passed": bool(ok), "detail": detail} for name, ok, detail in checks
            ],
            "balanced": all(ok for _, ok, _ in checks),
        }


class UpHarness(Harness):
    """The `up` phase: `wastatus up`, with REDIS_URL naming the harness's Redis, runs the web
    server and a worker and is the only one to start them again. The harness restarts and
    stops Redis and SIGKILLs up's worker; the ledger must balance as in the other plans, the
    web server must answer throughout, up must start its worker again, and SIGTERM to up must
    leave no process behind."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        super().__init__(args, workdir)
        self.up: subprocess.Popen | None = None
        self.up_log = workdir / "up.log"
        self.up_checks: list[tuple[str, bool, str]] = []

    def start(self) -> None:
        self.start_outside()
        port = free_port()
        env = {**self.env(), "WEB_CONCURRENCY": str(self.args.web_workers)}
        with self.up_log.open("ab") as log:
            self.up = subprocess.Popen(
                [sys.executable, "-m", "webhook.cli", "up", "--port", str(port)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.web = _UpWeb(port)
        wait_http(f"http://127.0.0.1:{port}/healthz", self.up, timeout=60)

    def stop(self) -> None:
        self.stopping = True
        if self.up is not None and self.up.poll() is None:
            os.killpg(self.up.pid, signal.SIGKILL)  # only when the report did not stop it
            self.up.wait()
        self.stop_outside()

    async def supervise(self) -> None:
        """Nothing: starting processes again is up's job here."""

    def up_children(self, word: str) -> list[int]:
        return [pid for pid in children(self.up.pid) if word in _cmdline(pid)]

    def kill_busy_worker(self, only: str | None = None) -> str:
        workers = self.up_children("webhook.cli worker")
        if not workers:
            return "up ran no worker: none killed"
        worker = workers[0]
        horses = children(worker)  # its scheduler, and its work horse if a job runs
        os.kill(worker, signal.SIGKILL)
        for pid in horses:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.killed.append({"worker": f"pid {worker}", "job": None, "ran_scheduler": None})
        return f"up's worker (pid {worker}) and its {len(horses)} children killed"

    def report(self, load_seconds: float, drain: float | None) -> dict:
        report = super().report(load_seconds, drain)
        up_ran = self.up.poll() is None
        log = self.up_log.read_text(errors="replace")
        restarted = not self.killed or (
            "worker was killed by SIGKILL" in log and "worker started again" in log
        )
        refused = self.tally.answers.get(0, 0)
        family = _family(self.up.pid)
        self.up.send_signal(signal.SIGTERM)
        try:
            exit_code = self.up.wait(60)
        except subprocess.TimeoutExpired:
            exit_code = None
        deadline = time.monotonic() + 30
        while (left := [pid for pid in family if _alive(pid)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        checks = [
            ("up ran until it was told to stop", up_ran, f"exit {self.up.returncode}"),
            ("the web server answered every request", refused == 0, f"{refused} not answered"),
            ("up started its killed worker again", restarted, "no restart in up.log"),
            (
                "SIGTERM stopped up (0) and every process it ran",
                exit_code == 0 and not left,
                f"exit {exit_code}, {len(left)} processes left",
            ),
        ]
        report["checks"] += [
            {"check": name, "passed": bool(ok), "detail": detail} for name, ok, detail in checks
        ]
        report["balanced"] = all(check["passed"] for check in report["checks"])
        report["up"] = {
            "worker_restarts": log.count("worker started again"),
            "redis_unreachable_lines": log.count('"event":"redis.unreachable"'),
            "resumed": [
                json.loads(line).get("down_seconds")
                for line in log.splitlines()
                if line.startswith("{") and '"event":"worker.resumed"' in line
            ],
        }
        return report


class _UpWeb:
    """Where up's web server listens (the base harness posts to `web.port`)."""

    def __init__(self, port: int) -> None:
        self.port = port


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _family(pid: int) -> set[int]:
    """`pid`'s descendants, through the /proc children lists."""
    found, frontier = set(), [pid]
    while frontier:
        kids = children(frontier.pop())
        found.update(kids)
        frontier.extend(kids)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def health_books(roles: dict[str, str], recorded: dict[str, str], accepted: dict) -> dict:
    """The health checks: every health event answered 200 ends once; what the alert receiver
    took agrees with the ledger; each opening of a problem fired once; each recovery that
    resolved one is first in exactly one `resolved` notification."""
    docs = [doc for doc in accepted.values() if doc.get("kind") == "health"]
    carried: dict[str, set[str]] = {}  # event id → accepted notifications that carry it
    for doc in docs:
        for item in doc.get("alerts") or []:
            carried.setdefault(item.get("event_id"), set()).add(doc.get("id"))
    ended = [event for event in roles if event in recorded]
    # told but ended otherwise: "dead" is possible (a problem whose own notification died is
    # carried again by its resolved one); "dropped" or "silenced" is a double ending
    told_not_alerted = sorted(e for e in carried if e in roles
                              and recorded.get(e) not in ("alerted", "dead"))  # fmt: skip
    alerted_untold = sorted(e for e in ended if recorded[e] == "alerted" and e not in carried)
    # a group is opened anew with a new first_seen: two firings of one opening are a double
    firings = Counter((doc.get("group_key"), doc.get("first_seen"))
                      for doc in docs if doc.get("status") == "firing")  # fmt: skip
    fired_twice = [key for key, count in firings.items() if count > 1]
    resolved_by = Counter((doc.get("alerts") or [{}])[0].get("event_id")
                          for doc in docs if doc.get("status") == "resolved")  # fmt: skip
    recovered = [e for e in ended if roles[e] == "recovery" and recorded[e] == "alerted"]
    unresolved = [e for e in recovered if resolved_by[e] != 1]
    resolved_twice = [e for e, count in resolved_by.items() if count > 1]
    by_role = Counter(f"{roles[e]}/{recorded.get(e, 'none')}" for e in roles)
    checks = [
        (
            "every health event answered 200 ends once",
            len(ended) == len(roles),
            f"{len(roles) - len(ended)} of {len(roles)} have no outcome",
        ),
        (
            "health events the alert receiver took ended alerted, and every alerted one was taken",
            not told_not_alerted and not alerted_untold,
            f"{len(told_not_alerted)} told but not alerted {told_not_alerted[:3]}, "
            f"{len(alerted_untold)} alerted but not told {alerted_untold[:3]}",
        ),
        (
            "each opening of a health problem fired once",
            not fired_twice,
            f"{len(fired_twice)} fired twice {fired_twice[:3]}",
        ),
        (
            "each recovery that resolved a problem is resolved once",
            not unresolved and not resolved_twice,
            f"{len(unresolved)} not in one resolved notification, {len(resolved_twice)} in two",
        ),
    ]
    figures = {
        "events_answered_200": len(roles),
        "by_role_and_outcome": dict(sorted(by_role.items())),
        "notifications": dict(Counter(doc.get("status") for doc in docs)),
        "resolved_before_firing": sum(
            1 for doc in docs if (doc.get("alerts") or [{}])[0].get("brief")
        ),
    }
    return {"checks": checks, "figures": figures}


def show(report: dict) -> None:
    """The report for people: the ledger, the figures, and every check."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    led = report["ledger"]
    table = Table(title="Ledger: every failed status answered 200, by outcome")
    table.add_column("outcome")
    table.add_column("events", justify="right")
    for name, count in led["outcomes"].items():
        table.add_row(name, str(count))
    table.add_row("[bold]accounted for[/bold]", f"[bold]{sum(led['outcomes'].values())}[/bold]")
    table.add_row("no outcome", str(led["missing"]))
    table.add_row(
        "[bold]answered 200[/bold]", f"[bold]{led['failed_statuses_answered_200']}[/bold]"
    )
    console.print(table)
    requests = report["requests"]
    latency = report["ack_latency"]
    console.print(
        f"requests: {requests['posted']} posted for {requests['deliveries']} deliveries; "
        f"answers {requests['answers']}"
    )
    console.print(f"deliveries by kind: {requests['by_kind']}")
    console.print(
        f"ack latency during faults: p50 {latency['during_faults']['p50_ms']} ms, p99 "
        f"{latency['during_faults']['p99_ms']} ms ({latency['during_faults']['count']}); calm: "
        f"p50 {latency['calm']['p50_ms']} ms, p99 {latency['calm']['p99_ms']} ms"
    )
    console.print(f"faults injected: {len(report['faults'])}")
    for fault in report["faults"]:
        console.print(f"  {fault['t']:6.1f}s  {fault['fault']:<20} {fault['detail']}")
    console.print(
        f"time to drain: {report['drain_seconds']} s after the load ({report['load_seconds']} s)"
    )
    console.print(f"receivers: {report['receivers']}")
    console.print(f"health: {report['health']}")
    for check in report["checks"]:
        verdict = "[green]PASS[/green]" if check["passed"] else "[red]FAIL[/red]"
        console.print(
            f"{verdict}  {check['check']}" + ("" if check["passed"] else f": {check['detail']}")
        )
    console.print(
        "[green]the ledger balances[/green]"
        if report["balanced"]
        else "[red]the ledger does not balance[/red]"
    )


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (60)")
    parser.add_argument("--rate", type=float, default=40.0, help="deliveries per second (40)")
    parser.add_argument("--workers", type=int, default=2, help="wastatus worker processes (2)")
    parser.add_argument("--web-workers", type=int, default=2, help="web server workers (2)")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=90.0,
        help="seconds to wait for the ledger to balance after the load (90)",
    )
    parser.add_argument(
        "--plan",
        choices=sorted(PLANS),
        default="full",
        help="which faults: full (all of issue 6), smoke (quick) or up (Redis restarted and "
        "stopped, and a worker killed, under `wastatus up`)",
    )
    parser.add_argument(
        "--storm-size",
        type=int,
        default=2000,
        help="transient failures of the resend storm of the full plan (2000; 0: none)",
    )
    parser.add_argument("--seed", type=int, default=None, help="traffic seed (random)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, AOF)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def run(args: argparse.Namespace) -> dict:
    """One harness run with `args`; returns the report (`report["balanced"]`)."""
    workdir = Path(tempfile.mkdtemp(prefix="wastatus-chaos-"))
    harness = (UpHarness if args.plan == "up" else Harness)(args, workdir)
    try:
        harness.start()
        harness.say(
            f"chaos: {args.duration:.0f} s at {args.rate:.0f} deliveries/s, "
            f"{args.workers} workers, work folder {workdir}"
        )
        report = asyncio.run(harness.main())
    finally:
        harness.stop()
    report["workdir"] = str(workdir)
    if args.keep or not report["balanced"]:
        missing = harness.tally.acked - set(harness.final_ledger)
        detail = {event: harness.tally.acked_at.get(event) for event in sorted(missing)}
        (workdir / "report.json").write_text(json.dumps({**report, "missing": detail}, indent=2))
        harness.say(f"logs, Redis data and report.json kept in {workdir}")
    else:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return report


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    report = run(args)
    if args.json:
        json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        show(report)
    return 0 if report["balanced"] else 1


if __name__ == "__main__":
    sys.exit(main())
