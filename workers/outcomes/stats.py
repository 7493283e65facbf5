"""Failure counts per hour by api and code, for `wastatus status` ("what failed lately").

One hash per UTC hour (`wastatus:stats:failures:<YYYYMMDDHH>`), field `api|code`, written with
HINCRBY in the drain job's pipeline and expired after two days. A window is read back by
whole hours, so `failures_since(conn, 3600)` covers the current and the previous hour.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable

import redis

HOUR_PREFIX = "wastatus:stats:failures:"
KEEP_SECONDS = 2 * 86400
NO_CODE = "none"


def hour_key(when: float) -> str:
    """The stats hash for the UTC hour of `when`."""
    return HOUR_PREFIX + time.strftime("%Y%m%d%H", time.gmtime(when))


def record(pipe: redis.Redis, events: Iterable[dict], now: float | None = None) -> None:
    """Count `events` (enriched or normalized) into this hour; `pipe` may be a pipeline."""
    counts = Counter(f"{event.get('api') or 'unknown'}|{_code(event)}" for event in events)
    if not counts:
        return
    key = hour_key(time.time() if now is None else now)
    for field, count in counts.items():
        pipe.hincrby(key, field, count)
    pipe.expire(key, KEEP_SECONDS)


def _code(event: dict) -> str:
    code = event.get("code")
    if code is None and event.get("errors"):
        code = event["errors"][0].get("code")
    return NO_CODE if code is None else str(code)


def failures_since(connection: redis.Redis, seconds: float, now: float | None = None) -> list[dict]:
    """Failures by api and code over the whole hours covering the last `seconds`, most first."""
    current = time.time() if now is None else now
    first = int((current - max(seconds, 0)) // 3600)
    last = int(current // 3600)
    with connection.pipeline(transaction=False) as pipe:
        for hour in range(first, last + 1):
            pipe.hgetall(hour_key(hour * 3600))
        totals: Counter = Counter()
        for counts in pipe.execute():
            for field, value in counts.items():
                totals[field.decode()] += int(value)
    rows = []
    for field, count in totals.items():
        api, _, code = field.partition("|")
        rows.append({"api": api, "code": None if code == NO_CODE else int(code), "count": count})
    return sorted(rows, key=lambda row: (-row["count"], row["api"], row["code"] or -1))
