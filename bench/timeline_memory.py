"""Redis memory per tracked message (`WASTATUS_TRACK_MESSAGES`): 100,000 messages with three
statuses each (sent, delivered, read), written as the web process writes them, then measured
with `MEMORY USAGE` over every timeline key (and `used_memory` before and after, as a check).

    .venv/bin/python -m bench.timeline_memory [--messages 100000] [--json]

The bar is 200 bytes a message. Memory does not depend on load, so this number is not
indicative like the throughput ones: it is what Redis reports (for its version and allocator).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import redis

from webhook.cli.redis_server import RedisServer
from workers.outcomes import timelines

BAR_BYTES = 200
BATCH = 100
"""Statuses per webhook (per `timelines.record` call)."""
RETENTION = 72 * 3600.0


def wamid(serial: int) -> str:
    """A wamid as long as Meta's (about 58 characters)."""
    raw = b"\x18\x0b" + b"81312345678" + serial.to_bytes(8, "big") + os.urandom(20)
    return "wamid." + base64.b64encode(raw).decode().rstrip("=")


def fill(connection: redis.Redis, messages: int) -> None:
    now = time.time()
    sent_at = int(now) - 60
    ids = [wamid(serial) for serial in range(messages)]
    statuses = []
    for name, offset in (("sent", 0), ("delivered", 3), ("read", 40)):
        for message in ids:
            statuses.append((message, sent_at + offset, name, None, "106540352242922",
                             "spring-sale-2026", "marketing/regular/marketing"))  # fmt: skip
    for start in range(0, len(statuses), BATCH):
        timelines.record(connection, statuses[start : start + BATCH], now, RETENTION, 86400)


def measure(messages: int) -> dict:
    with tempfile.TemporaryDirectory() as folder, RedisServer(Path(folder)) as server:
        connection = redis.Redis.from_url(server.url)
        before = connection.info("memory")["used_memory"]
        fill(connection, messages)
        after = connection.info("memory")["used_memory"]
        keys = list(connection.scan_iter(match=timelines.PREFIX + "*", count=1000))
        usage = sum(connection.memory_usage(key, samples=0) or 0 for key in keys)
        stuck = connection.zcard(timelines.STUCK_DUE)
        encodings = sorted({connection.object("encoding", key).decode() for key in keys})
        version = connection.info("server")["redis_version"]
    return {
        "messages": messages,
        "statuses_per_message": 3,
        "keys": len(keys),
        "encodings": encodings,
        "memory_usage_bytes": usage,
        "bytes_per_message": round(usage / messages, 1),
        "used_memory_delta_per_message": round((after - before) / messages, 1),
        "stuck_index_left": stuck,
        "redis_version": version,
        "bar_bytes": BAR_BYTES,
        "passes": usage / messages <= BAR_BYTES,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    found = measure(options.messages)
    if options.json:
        print(json.dumps(found, indent=2))
    else:
        print(f"{found['messages']} messages × 3 statuses in {found['keys']} hashes "
              f"({', '.join(found['encodings'])}), Redis {found['redis_version']}")  # fmt: skip
        print(f"MEMORY USAGE: {found['bytes_per_message']} bytes a message "
              f"(used_memory delta: {found['used_memory_delta_per_message']}); "
              f"bar {BAR_BYTES}: {'pass' if found['passes'] else 'FAIL'}")  # fmt: skip
    return 0 if found["passes"] else 1


if __name__ == "__main__":
    sys.exit(main())
