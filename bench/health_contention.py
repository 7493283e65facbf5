"""Health events taken by concurrent drain processes: WATCH retries per event and events/s.

2,000 health events over 200 templates (each paused and reinstated in turn, so every event
opens or closes a problem on an alert route) are stored in the inbox of a Redis of its own, then
drained by 1, 2 and 4 drain processes started together (batches of 20, so their batches
interleave). Each process counts the WatchErrors of its transactions (a retry of a health
event whose keys another worker changed first).

    .venv/bin/python -m bench.health_contention [--events 2000] [--entities 200] [--json]

Ratios are against the single process of the same run. Events/s on a loaded machine are
indicative only; retries per event depend on how the processes interleave, not on speed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from webhook.cli.redis_server import RedisServer
from webhook.health_payload import normalize
from workers.inbox import intake

WABA = "102290129340398"
T0 = 1_796_000_000
READY = "bench:health:ready"


def events(count: int, entities: int) -> list[dict]:
    """`count` template changes over `entities` templates: PAUSED, REINSTATED, PAUSED, ..."""
    found = []
    for serial in range(count):
        template, turn = serial % entities, serial // entities
        value = "PAUSED" if turn % 2 == 0 else "REINSTATED"
        loaded = {"event": value, "message_template_id": str(1000 + template),
                  "message_template_name": f"t{template}",
                  "message_template_language": "ja"}  # fmt: skip
        event = normalize("message_template_status_update", loaded, WABA, time.time())
        at = T0 + 10 * turn
        found.append(event | {"event_id": f"b{template}-{value}-{at}", "timestamp": at})
    return found


def child(together: int) -> None:
    """One drain process: count WatchErrors, drain until the inbox is empty, print the count."""
    from workers import drain

    retries = [0]
    execute = redis.client.Pipeline.execute

    def counted(self, *args, **kwargs):
        try:
            return execute(self, *args, **kwargs)
        except redis.WatchError:
            retries[0] += 1
            raise

    redis.client.Pipeline.execute = counted
    connection = drain.job_connection()
    connection.incr(READY)
    while int(connection.get(READY) or 0) < together:
        time.sleep(0.001)
    while connection.llen(intake.INBOX):
        drain.drain_inbox()
    print(json.dumps({"retries": retries[0]}))


def run(url: str, workers: int, count: int, entities: int) -> dict:
    connection = redis.Redis.from_url(url)
    connection.flushall()
    batch = events(count, entities)
    for start in range(0, len(batch), 100):
        intake.store(connection, batch[start : start + 100])
    env = {**os.environ, "REDIS_URL": url, "WASTATUS_DRAIN_BATCH": "20",
           "WASTATUS_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/alerts",
           "WASTATUS_GROUP_WAIT": "60"}  # fmt: skip
    for name in ("WASTATUS_ALERT_URLS", "WASTATUS_RULES", "WASTATUS_RETRY_URL"):
        env.pop(name, None)
    command = [sys.executable, "-m", "bench.health_contention", "--child", str(workers)]
    started = time.monotonic()
    children = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE) for _ in range(workers)]
    retries = 0
    for process in children:
        output = process.communicate(timeout=600)[0].decode()
        if process.returncode != 0:
            raise SystemExit(f"drain process failed: {output}")
        retries += json.loads(output.strip().splitlines()[-1])["retries"]
    seconds = time.monotonic() - started
    taken = sum(int(value) for value in connection.hvals("wastatus:health:counts"))
    if taken != count:
        raise SystemExit(f"{taken} events counted, {count} sent")
    return {"workers": workers, "seconds": round(seconds, 2),
            "events_per_second": round(count / seconds, 1),
            "retries": retries, "retries_per_event": round(retries / count, 3)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--entities", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.child)
        return 0
    with tempfile.TemporaryDirectory() as folder, RedisServer(Path(folder)) as server:
        found = [run(server.url, n, options.events, options.entities) for n in (1, 2, 4)]
    base = found[0]["events_per_second"]
    for row in found:
        row["throughput_ratio"] = round(row["events_per_second"] / base, 2)
    if options.json:
        print(json.dumps(found, indent=2))
    else:
        for row in found:
            print(f"{row['workers']} drain process(es): {row['events_per_second']} events/s "
                  f"({row['throughput_ratio']}x one), {row['retries']} WATCH retries "
                  f"({row['retries_per_event']} per event)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
