"""Redis memory of two message-fate records, measured with `MEMORY USAGE`:

- the stuck index (`workers.outcomes.timelines.STUCK_DUE`, with `WASTATUS_TRACK_MESSAGES`):
  bytes per message still only `sent`, on top of its timeline record;
- the late-delivered record (`workers.fates.late`, for everyone): bytes per alerted failure,
  at several failures a day (its shards' fixed cost is spread over fewer failures on a
  quiet day);
- the sent/failed marks (`workers.fates.marks`, with tracking off): bytes per message marked,
  at several messages a day, each marked by its `sent` and a tenth of them by a `failed` too.

    .venv/bin/python -m bench.fates_memory [--messages 100000] [--json]

Memory does not depend on load, so these numbers are not indicative like the throughput ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import redis

from bench.timeline_memory import wamid
from webhook.cli.redis_server import RedisServer
from workers.fates import late, marks
from workers.outcomes import timelines

BATCH = 100
FAILURES = (1_000, 10_000, 32_768, 100_000, 262_144)
MARKED = (10_000, 100_000, 1_000_000, 1_500_000)
"""Messages a day marked (the last past the per-day bound)."""
GROUPS = 20
"""Alert groups the failures of a day fall in (a day's group numbers are shared)."""


def stuck_index(connection: redis.Redis, messages: int) -> dict:
    now = time.time()
    ids = [wamid(serial) for serial in range(messages)]
    statuses = [(message, int(now) - 60, "sent", None, "106540352242922", "spring-sale",
                 "marketing/regular/marketing") for message in ids]  # fmt: skip
    for start in range(0, messages, BATCH):
        timelines.record(connection, statuses[start : start + BATCH], now, 72 * 3600.0, 86400)
    usage = connection.memory_usage(timelines.STUCK_DUE, samples=0)
    return {
        "messages": messages,
        "members": connection.zcard(timelines.STUCK_DUE),
        "bytes_per_message": round(usage / messages, 1),
    }


def late_record(connection: redis.Redis, failures: int) -> dict:
    connection.flushdb()
    now = time.time()
    gids = [f"{n:016x}" for n in range(GROUPS)]
    for start in range(0, failures, 1000):
        alerted = [(wamid(serial), gids[serial % GROUPS])
                   for serial in range(start, min(failures, start + 1000))]  # fmt: skip
        with connection.pipeline(transaction=True) as pipe:
            late.remember(pipe, alerted, now)
            pipe.execute()
    keys = list(connection.scan_iter(match=late.ALERTED_PREFIX + "*", count=1000))
    usage = sum(connection.memory_usage(key, samples=0) or 0 for key in keys)
    kept = sum(connection.hlen(key) for key in keys if not key.endswith(b":groups"))
    encodings = sorted({connection.object("encoding", key).decode() for key in keys})
    return {
        "failures": failures,
        "remembered": kept,
        "keys": len(keys),
        "encodings": encodings,
        "bytes_per_failure": round(usage / failures, 1),
    }


def sent_marks(connection: redis.Redis, messages: int) -> dict:
    connection.flushdb()
    now = time.time()
    minute = int(now // 60)
    for start in range(0, messages, 10_000):
        ended = [(minute, wamid(serial), "sent", None, "106540352242922", "spring-sale", "-")
                 for serial in range(start, min(messages, start + 10_000))]  # fmt: skip
        ended += [(minute, item[1], "failed", 131049, *item[4:]) for item in ended[::10]]
        with connection.pipeline(transaction=False) as pipe:
            marking = marks.mark(pipe, ended, 3600.0, now)
            replies = pipe.execute()
    keys = list(connection.scan_iter(match=marks.PREFIX + "*", count=1000))
    usage = sum(connection.memory_usage(key, samples=0) or 0 for key in keys)
    kept = sum(connection.hlen(key) for key in keys)
    encodings = sorted({connection.object("encoding", key).decode() for key in keys})
    return {
        "messages": messages,
        "marked": kept,
        "counted_last_batch": sum(marks.counted(marking, replies).values()),
        "keys": len(keys),
        "encodings": encodings,
        "bytes_per_message": round(usage / min(messages, kept or 1), 1),
    }


def measure(messages: int) -> dict:
    with tempfile.TemporaryDirectory() as folder, RedisServer(Path(folder)) as server:
        connection = redis.Redis.from_url(server.url)
        version = connection.info("server")["redis_version"]
        found = {"redis_version": version, "stuck_index": stuck_index(connection, messages)}
        found["late_record"] = [late_record(connection, count) for count in FAILURES]
        found["sent_marks"] = [sent_marks(connection, count) for count in MARKED]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    found = measure(args.messages)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    stuck = found["stuck_index"]
    print(f"redis {found['redis_version']}")
    print(f"stuck index: {stuck['bytes_per_message']} bytes a message still only sent "
          f"({stuck['messages']} messages)")  # fmt: skip
    for row in found["late_record"]:
        print(f"late record: {row['bytes_per_failure']:6} bytes an alerted failure at "
              f"{row['failures']:>7} a day ({row['remembered']} kept, {row['keys']} keys, "
              f"{'/'.join(row['encodings'])})")  # fmt: skip
    for row in found["sent_marks"]:
        print(f"sent marks:  {row['bytes_per_message']:6} bytes a marked message at "
              f"{row['messages']:>7} a day ({row['marked']} marked, {row['keys']} keys, "
              f"{'/'.join(row['encodings'])})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
