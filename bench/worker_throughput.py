"""Worker throughput: failed events enriched and routed per second by one worker process,
against RQ's own no-op jobs per second with the same worker class, in the same run.

Both sides run `rq.Worker` (the forking class `wastatus worker` uses, with the scheduler and
the JSON serializer) in burst mode on a fresh redis-server (append-only) on loopback. The
baseline is one RQ job per unit of work doing nothing; ours is the real drain job: events
stored by the intake's Lua script (as the webhook stores them), drained in batches, enriched
from the catalog, routed by the built-in rules with a resend URL set (transient codes get a
resend item, due now or later, the rest go to alert groups; group_wait is left at 30 s so no
notification is sent during the run), with the ledger and stats written. Rounds alternate
(baseline, ours, baseline, ours) so other load on the machine hits both; medians are compared.

    .venv/bin/python -m bench.worker_throughput [--events 20000] [--noop-jobs 600] [--rounds 2]
        [--rules FILE] [--json]

Bars: ≥ 2,000 events/s per worker process and ≥ 10× the no-op job rate. Exit status 1 if a
bar is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis
from rq import Worker
from rq.serializers import JSONSerializer

from webhook.cli.redis_server import RedisServer
from workers import queues
from workers.inbox import intake
from workers.outcomes import ledger

BAR_EVENTS_PER_SECOND = 2000.0
BAR_RATIO = 10.0
CODES = (131049, 131026, 131047, 130472, 131000, 131016, 131042, 470, 1014, 130429, 131043)


def noop() -> None:
    """The baseline job: RQ's own cost per job, nothing of ours."""


def make_events(
    count: int, run: str, codes: tuple[int, ...] = CODES, seed: object = 7
) -> list[dict]:
    """Normalized failed events of a campaign: a few codes, several numbers, unique ids."""
    rng = random.Random(seed)
    now = time.time()
    events = []
    for n in range(count):
        code = rng.choice(codes)
        event = {
            "kind": "status", "api": "on_premises" if code == 470 else "cloud",
            "waba_id": "102290129340398", "phone_number_id": f"10654035224292{n % 3}",
            "display_phone_number": "15550783881", "message_id": f"wamid.{run}.{n}",
            "recipient_id": f"81{rng.randrange(10**9, 10**10)}", "recipient_participant_id": None,
            "status": "failed", "timestamp": int(now),
            "errors": [{"code": code, "title": "t", "message": "m", "details": "d", "href": None}],
            "biz_opaque_callback_data": f"campaign-{n % 5}", "conversation": None,
            "pricing": None, "received_at": now,
        }  # fmt: skip
        event["event_id"] = intake.event_id(event)
        events.append(event)
    return events


def worker(connection: redis.Redis) -> Worker:
    # Only the events queue: the resend and alert jobs the drain creates are downstream work
    # (one HTTP call each), measured by their own benchmarks, not "enriched and routed".
    return Worker(
        [queues.get_queue(connection, queues.EVENTS)],
        connection=connection,
        serializer=JSONSerializer,
    )


def run_noop(connection: redis.Redis, jobs: int) -> float:
    """No-op jobs per second through one forking worker."""
    queue = queues.get_queue(connection, queues.EVENTS)
    queue.enqueue_many([queue.prepare_data(noop, result_ttl=0) for _ in range(jobs)])
    started = time.perf_counter()
    worker(connection).work(burst=True, with_scheduler=True, logging_level="WARNING")
    elapsed = time.perf_counter() - started
    return jobs / elapsed


def run_drain(connection: redis.Redis, count: int, run: str) -> float:
    """Failed events routed per second through one forking worker (drain jobs)."""
    events = make_events(count, run)
    for start in range(0, count, 1000):  # as the webhook stores them, in request-sized calls
        intake.store(connection, events[start : start + 1000])
    started = time.perf_counter()
    worker(connection).work(burst=True, with_scheduler=True, logging_level="WARNING")
    elapsed = time.perf_counter() - started
    if connection.llen(intake.INBOX) or connection.keys(intake.PROCESSING_PATTERN):
        raise SystemExit("the inbox was not drained")
    return count / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--noop-jobs", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rules", help="a rules file (default: the built-in rules)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("WASTATUS_RETRY_URL", "http://127.0.0.1:9/resend")
    if args.rules:
        os.environ["WASTATUS_RULES"] = args.rules
    else:
        os.environ.pop("WASTATUS_RULES", None)
    noop_rates, event_rates = [], []
    with tempfile.TemporaryDirectory() as folder, RedisServer(Path(folder)) as server:
        connection = redis.Redis.from_url(server.url)
        os.environ["REDIS_URL"] = server.url
        for round_ in range(args.rounds):
            connection.flushdb()
            noop_rates.append(run_noop(connection, args.noop_jobs))
            connection.flushdb()
            event_rates.append(run_drain(connection, args.events, f"r{round_}"))
            summary = ledger.summary(connection)
        connection.close()
    noop_rate = statistics.median(noop_rates)
    event_rate = statistics.median(event_rates)
    ratio = event_rate / noop_rate
    passed = event_rate >= BAR_EVENTS_PER_SECOND and ratio >= BAR_RATIO
    result = {
        "events": args.events,
        "rounds": args.rounds,
        "noop_jobs_per_second": round(noop_rate, 1),
        "events_per_second": round(event_rate, 1),
        "ratio": round(ratio, 1),
        "bars": {"events_per_second": BAR_EVENTS_PER_SECOND, "ratio": BAR_RATIO},
        "pass": passed,
        "all_rounds": {
            "noop": [round(r, 1) for r in noop_rates],
            "events": [round(r, 1) for r in event_rates],
        },
        "last_round_ledger": summary["outcomes"],
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        rounds = result["all_rounds"]
        print(f"RQ no-op jobs/s (rq.Worker, 1 process):   {noop_rate:10.1f}  {rounds['noop']}")
        print(f"failed events routed/s (same worker):    {event_rate:10.1f}  {rounds['events']}")
        print(f"ratio events/s ÷ no-op jobs/s:           {ratio:10.1f}")
        print(f"bars: ≥ {BAR_EVENTS_PER_SECOND:.0f} events/s and ≥ {BAR_RATIO:.0f}× → "
              f"{'PASS' if passed else 'FAIL'}")  # fmt: skip
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
