"""Redis memory of the delivery funnels: a busy sender's day of minute and hour buckets,
written as the web processes write them (`workers.outcomes.funnels.write`, one flush a
minute here: the bytes depend on the distinct values a bucket holds, not on how often it is
flushed), measured with `MEMORY USAGE` over every funnel key and scaled to the retention.

    .venv/bin/python -m bench.funnel_memory [--trackers 50] [--phones 3] [--minutes 1440] [--json]

The default traffic: 50 trackers x 3 phone numbers, each busy every minute with sent,
delivered, read and failed statuses (two failure codes) under two pricing categories. Memory
does not depend on load, so this number is not indicative like the throughput ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import redis

from webhook.cli.redis_server import RedisServer
from workers.outcomes import funnels

RETENTION_DAYS = 14
CATEGORIES = ("marketing/regular/marketing", "utility/regular/utility")


def tally(minute: int, trackers: int, phones: int) -> dict[tuple, int]:
    """One minute of a busy sender: every tracker on every number sends, most deliver, some
    read, a few fail with one of two codes."""
    counts: dict[tuple, int] = {}
    for t in range(trackers):
        tracker = f"campaign-{t:03d}-spring-sale"
        for p in range(phones):
            phone = f"10654035224{p:04d}"
            kind = CATEGORIES[(t + p) % len(CATEGORIES)]
            for status, code, n in (("sent", None, 40), ("delivered", None, 35),
                                    ("read", None, 20), ("failed", 131049, 3),
                                    ("failed", 131026, 1)):  # fmt: skip
                counts[
                    (minute, status, code, phone, tracker, kind if status != "failed" else None)
                ] = n
    return counts


def measure(trackers: int, phones: int, minutes: int) -> dict:
    with tempfile.TemporaryDirectory() as folder, RedisServer(Path(folder)) as server:
        connection = redis.Redis.from_url(server.url)
        before = connection.info("memory")["used_memory"]
        first = int(time.time() // 60) - minutes
        for minute in range(first, first + minutes):
            with connection.pipeline(transaction=False) as pipe:
                funnels.write(pipe, tally(minute, trackers, phones), RETENTION_DAYS * 86400.0, 1000)
                pipe.execute()
        after = connection.info("memory")["used_memory"]
        keys = list(connection.scan_iter(match=funnels.PREFIX + "*", count=1000))
        sizes = {key: connection.memory_usage(key, samples=0) or 0 for key in keys}
        minute_bytes = sum(v for k, v in sizes.items() if b":m:" in k)
        hour_bytes = sum(v for k, v in sizes.items() if b":h:" in k)
        encodings = sorted({connection.object("encoding", key).decode() for key in keys})
        version = connection.info("server")["redis_version"]
    day = 1440 / minutes
    per_minute = minute_bytes / minutes
    per_hour = hour_bytes / (minutes / 60)
    return {
        "trackers": trackers,
        "phones": phones,
        "minutes": minutes,
        "keys": len(keys),
        "encodings": encodings,
        "bytes_per_minute_bucket": round(per_minute),
        "bytes_per_hour_bucket": round(per_hour),
        "memory_usage_bytes": minute_bytes + hour_bytes,
        "used_memory_delta": after - before,
        "mb_per_day": round((minute_bytes + hour_bytes) * day / 1e6, 2),
        "mb_for_14_days": round((minute_bytes + hour_bytes) * day * RETENTION_DAYS / 1e6, 1),
        "redis_version": version,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trackers", type=int, default=50)
    parser.add_argument("--phones", type=int, default=3)
    parser.add_argument("--minutes", type=int, default=1440)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    found = measure(args.trackers, args.phones, args.minutes)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    for key, value in found.items():
        print(f"{key:28} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
