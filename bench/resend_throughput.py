"""Resend throughput: resends per second one worker process sends to a fast receiver, against
RQ's own no-op jobs per second in the same run; then a mixed storm drained end to end.

Everything runs on loopback against a fresh append-only redis-server and a bare asyncio
receiver in a process of its own (`bench/_fast_receiver.py`: keep-alive, one write per answer).

1. **Baseline**: `--noop-jobs` no-op RQ jobs through `rq.SimpleWorker` in burst mode.
2. **Resends**: `--resends` failures with code 131000 (transient: resent at once) stored as the
   webhook stores them and routed by a drain job beforehand, so that many resends are due;
   then one worker (the `wastatus worker` class, in this process, burst) runs until every
   resend reached the receiver. Reports resends/s, the ratio to the no-op rate, and the CPU per
   resend of the worker (its process, its work horses and its scheduler) and of the receiver.
3. **Redis bytes per resend**: MEMORY USAGE of what a waiting resend holds now (its item and
   its entry in the due set), and of what the one-job-per-resend path held (the job hash with
   the enriched event, the queue entry and the pending entry) for the same events.
4. **Mixed storm**: `--storm` failures with codes drawn from 131047, 131026, 131049, 130472,
   131000, 131048, 132001, 131056, stored first, then drained end to end by `wastatus worker
   --burst` processes (1, then 2), alerts with group_wait 0 to the receiver: events/s, ratio to
   the no-op rate, time from the worker's start to the first alert delivered. 131049 (24 h)
   and 131056 (60 s) resends are only due later: they are counted as scheduled.

    .venv/bin/python -m bench.resend_throughput [--resends 2000] [--storm 10000]
        [--noop-jobs 600] [--rounds 2] [--json]

Bars: ≥ 1,000 resends/s and ≥ 10× the no-op rate; the storm at ≥ 2,000 events/s, ≥ 10× the
no-op rate, first alert within 5 s. Exit status 1 if a bar is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from bench._fast_receiver import FastReceiver
from bench.worker_throughput import make_events
from webhook.cli.redis_server import RedisServer
from workers import queues, runner
from workers.inbox import intake
from workers.inbox.enrich import enrich
from workers.outcomes import ledger
from workers.resend import schedule
from workers.routing.rules import current_rules

BAR_RESENDS_PER_SECOND = 1000.0
BAR_RATIO = 10.0
BAR_STORM_EVENTS_PER_SECOND = 2000.0
BAR_FIRST_ALERT_SECONDS = 5.0
STORM_CODES = (131047, 131026, 131049, 130472, 131000, 131048, 132001, 131056)
LATER_CODES = (131049, 131056)
"""Resent only after the catalog's minimum delay (24 h, 60 s): scheduled, not sent, in a run."""
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def noop() -> None:
    """The baseline job: RQ's own cost per job, nothing of ours."""


def store(connection: redis.Redis, events: list[dict]) -> None:
    for start in range(0, len(events), 1000):  # as the webhook stores them
        intake.store(connection, events[start : start + 1000])


def cpu_now() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_noop(connection: redis.Redis, jobs: int) -> float:
    """No-op jobs per second through RQ's SimpleWorker, burst."""
    queue = queues.get_queue(connection, queues.EVENTS)
    queue.enqueue_many([queue.prepare_data(noop, result_ttl=0) for _ in range(jobs)])
    started = time.perf_counter()
    worker = SimpleWorker([queue], connection=connection, serializer=JSONSerializer)
    worker.work(burst=True, logging_level="WARNING")
    return jobs / (time.perf_counter() - started)


def prepare_resends(connection: redis.Redis, count: int, run: str) -> None:
    """Store `count` 131000 failures and route them, so that `count` resends are due."""
    store(connection, make_events(count, run, (131000,), seed=run))
    events = queues.get_queue(connection, queues.EVENTS)
    SimpleWorker([events], connection=connection, serializer=JSONSerializer).work(
        burst=True, logging_level="WARNING"
    )
    waiting = schedule.waiting(connection)
    if waiting["due"] != count:
        raise SystemExit(f"expected {count} due resends, found {waiting}")


def run_resends(connection: redis.Redis, receiver: FastReceiver, count: int, run: str) -> dict:
    """Resends per second through one worker (the `wastatus worker` class, burst)."""
    prepare_resends(connection, count, run)
    receiver.reset()
    cpu, receiver_cpu = cpu_now(), receiver.cpu_seconds()
    started = time.perf_counter()
    runner.run_worker(connection, burst=True)
    while receiver.distinct < count and time.perf_counter() - started < 120:
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    if receiver.distinct != count:
        raise SystemExit(f"only {receiver.distinct} of {count} resends reached the receiver")
    summary = ledger.summary(connection)["outcomes"]
    return {
        "resends_per_second": count / elapsed,
        "worker_cpu_us_per_resend": (cpu_now() - cpu) / count * 1e6,
        "receiver_cpu_us_per_resend": (receiver.cpu_seconds() - receiver_cpu) / count * 1e6,
        "requests": receiver.count("/resend"),
        "resent_in_ledger": summary["resent"],
    }


def memory_per_resend(connection: redis.Redis, count: int = 500) -> dict:
    """Redis bytes a waiting resend holds now, and what the one-job path held (MEMORY USAGE)."""
    connection.flushdb()
    events = make_events(count, "memory", (131049,), seed="memory")
    rules = current_rules()
    chosen = next(route for route in rules.all_routes() if route.action == "retry")
    now = time.time()
    with connection.pipeline(transaction=True) as pipe:
        schedule.schedule_first(pipe, [(enrich(event), chosen, True) for event in events], now)
        pipe.execute()
    after = (_usage(connection, schedule.ITEMS) + _usage(connection, schedule.DUE)) / count
    connection.flushdb()
    # The path of earlier versions: one scheduled RQ job per resend, its arguments the
    # enriched event (both languages' catalog text) and the route, plus a pending entry.
    queue = queues.get_queue(connection, queues.RETRY)
    with connection.pipeline(transaction=True) as pipe:
        for event in events:
            enriched = enrich(event)
            job_id = f"wastatus-resend-{event['event_id']}-1"
            queue.enqueue_in(
                dt.timedelta(days=1), schedule.LEGACY_JOB, enriched,
                chosen.to_dict(), 1, job_id=job_id, result_ttl=3600, failure_ttl=7 * 86400,
                pipeline=pipe,
            )  # fmt: skip
            pipe.zadd(schedule.PENDING, {job_id: now + 86400})
        pipe.execute()
    jobs = sum(_usage(connection, f"rq:job:wastatus-resend-{e['event_id']}-1") for e in events)
    registry = f"rq:scheduled:{queues.RETRY}"
    before = (jobs + _usage(connection, registry) + _usage(connection, schedule.PENDING)) / count
    connection.flushdb()
    return {"after_bytes": round(after), "before_bytes_without_result": round(before)}


def _usage(connection: redis.Redis, key: str) -> int:
    return int(connection.memory_usage(key, samples=0) or 0)


def run_storm(
    connection: redis.Redis, receiver: FastReceiver, count: int, run: str, workers: int, env: dict
) -> dict:
    """A mixed storm drained end to end by `workers` `wastatus worker --burst` processes."""
    connection.flushdb()
    events = make_events(count, run, STORM_CODES, seed=run)
    later = sum(1 for event in events if event["errors"][0]["code"] in LATER_CODES)
    resent_now = sum(1 for event in events if event["errors"][0]["code"] == 131000)
    alerted = count - later - resent_now
    store(connection, events)
    receiver.reset()
    command = [sys.executable, "-m", "webhook.cli", "worker", "--burst"]
    started = time.time()
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    for process in processes:
        process.wait(600)
    # a second worker may have flushed a group while the drain still added to it: the rest
    # is then an update due after the group interval; drain those with the scheduler
    deadline = time.time() + 30
    while time.time() < deadline:
        outcomes = ledger.summary(connection)["outcomes"]
        if outcomes["alerted"] >= alerted and receiver.distinct >= resent_now:
            break
        time.sleep(0.05)
    elapsed = time.time() - started
    outcomes = ledger.summary(connection)["outcomes"]
    first_alert = receiver.first("/alerts")
    return {
        "workers": workers,
        "events": count,
        "seconds": round(elapsed, 2),
        "events_per_second": count / elapsed,
        "first_alert_seconds": None if first_alert is None else round(first_alert - started, 2),
        "alerted": outcomes["alerted"],
        "alerts_expected": alerted,
        "notifications": receiver.count("/alerts"),
        "resent": receiver.distinct,
        "resends_expected_now": resent_now,
        "scheduled_for_later": schedule.waiting(connection)["scheduled"],
        "scheduled_expected": later,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resends", type=int, default=2000)
    parser.add_argument("--storm", type=int, default=10000)
    parser.add_argument("--noop-jobs", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    receiver = FastReceiver().start()
    noop_rates, resend_runs, storms = [], [], []
    try:
        with tempfile.TemporaryDirectory() as folder, RedisServer(Path(folder)) as server:
            env = {
                **os.environ,
                "REDIS_URL": server.url,
                "WASTATUS_DATA_DIR": folder,
                "WASTATUS_RETRY_URL": receiver.url + "/resend",
                "WASTATUS_RETRY_SECRET": SECRET,
                "WASTATUS_ALERT_WEBHOOK_URL": receiver.url + "/alerts",
                "WASTATUS_GROUP_WAIT": "0",
                "WASTATUS_LOG_LEVEL": "WARNING",
            }
            env.pop("WASTATUS_RULES", None)
            env.pop("WASTATUS_RETRY_RATE", None)
            os.environ.clear()
            os.environ.update(env)
            connection = redis.Redis.from_url(server.url)
            for round_ in range(args.rounds):
                connection.flushdb()
                noop_rates.append(run_noop(connection, args.noop_jobs))
                connection.flushdb()
                resend_runs.append(run_resends(connection, receiver, args.resends, f"r{round_}"))
            memory = memory_per_resend(connection)
            if args.storm:
                for workers in (1, 2):
                    storms.append(
                        run_storm(connection, receiver, args.storm, f"s{workers}", workers, env)
                    )
            connection.close()
    finally:
        receiver.stop()
    noop_rate = statistics.median(noop_rates)
    rate = statistics.median(run["resends_per_second"] for run in resend_runs)
    ratio = rate / noop_rate
    passed = rate >= BAR_RESENDS_PER_SECOND and ratio >= BAR_RATIO
    for storm in storms:
        storm["ratio"] = round(storm["events_per_second"] / noop_rate, 1)
        storm["events_per_second"] = round(storm["events_per_second"], 1)
    if storms:
        one = storms[0]
        storm_passed = (
            one["events_per_second"] >= BAR_STORM_EVENTS_PER_SECOND
            and one["ratio"] >= BAR_RATIO
            and one["first_alert_seconds"] is not None
            and one["first_alert_seconds"] <= BAR_FIRST_ALERT_SECONDS
        )
        passed = passed and storm_passed
    scaling = None
    if len(storms) == 2:
        scaling = round(storms[1]["events_per_second"] / storms[0]["events_per_second"], 2)
    result = {
        "resends": args.resends,
        "rounds": args.rounds,
        "noop_jobs_per_second": round(noop_rate, 1),
        "resends_per_second": round(rate, 1),
        "ratio": round(ratio, 1),
        "resend_runs": [{key: round(value, 1) for key, value in r.items()} for r in resend_runs],
        "redis_bytes_per_resend": memory,
        "storms": storms,
        "scaling_2_workers": scaling,
        "bars": {
            "resends_per_second": BAR_RESENDS_PER_SECOND,
            "ratio": BAR_RATIO,
            "storm_events_per_second": BAR_STORM_EVENTS_PER_SECOND,
            "first_alert_seconds": BAR_FIRST_ALERT_SECONDS,
        },
        "pass": passed,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result)
    return 0 if passed else 1


def show(result: dict) -> None:
    runs = result["resend_runs"]
    memory = result["redis_bytes_per_resend"]
    lines = [
        f"RQ no-op jobs/s (SimpleWorker, burst): {result['noop_jobs_per_second']:.1f}",
        f"resends/s (1 worker, {result['resends']} due, fast receiver): "
        f"{result['resends_per_second']:.1f} {[run['resends_per_second'] for run in runs]}",
        f"ratio resends/s / no-op jobs/s: {result['ratio']:.1f}",
        f"worker CPU per resend (us): {[run['worker_cpu_us_per_resend'] for run in runs]}",
        f"receiver CPU per resend (us): {[run['receiver_cpu_us_per_resend'] for run in runs]}",
        f"Redis bytes per waiting resend: now {memory['after_bytes']}, one-job path "
        f"{memory['before_bytes_without_result']} (+ its result for an hour once run)",
    ]
    for storm in result["storms"]:
        lines.append(
            f"storm, {storm['workers']} worker(s): {storm['events']} events in "
            f"{storm['seconds']} s = {storm['events_per_second']} events/s ({storm['ratio']}x "
            f"no-op); first alert after {storm['first_alert_seconds']} s; alerted "
            f"{storm['alerted']}/{storm['alerts_expected']} in {storm['notifications']} "
            f"notifications; resent {storm['resent']}/{storm['resends_expected_now']}; "
            f"scheduled for later {storm['scheduled_for_later']}/{storm['scheduled_expected']}"
        )
    if result["scaling_2_workers"] is not None:
        lines.append(f"2 workers / 1 worker (storm events/s): {result['scaling_2_workers']}")
    lines.append("PASS" if result["pass"] else "FAIL (a bar was missed)")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
