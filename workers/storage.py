"""What wastatus holds in Redis: memory used, the limit, and the size of its largest keys.

Read by `/metrics` and `wastatus status`. The keys measured are the ones that grow with
traffic or with hostile input (`KEYS`); MEMORY USAGE samples big lists and streams, so one
pipelined round trip costs about the same whatever they hold. Measuring every key would need a
SCAN of the whole keyspace: the ledger, seen marks and RQ jobs are counted by `DBSIZE` instead.
"""

from __future__ import annotations

import redis

from workers import metrics
from workers.alerting import silences
from workers.inbox import intake
from workers.outcomes import deadletters

KEYS = {
    "inbox": intake.INBOX,
    "quarantine": "wastatus:quarantine",
    "dead_letters": deadletters.DEAD,
    "dead_letter_index": deadletters.INDEX,
    "metrics": metrics.EXPORT_KEY,
    "silences": silences.SILENCES,
    "silence_counts": silences.COUNTS,
}
"""Name shown → Redis key, for the keys that could grow without bound if a bound broke."""


def memory(connection: redis.Redis) -> dict:
    """Bytes used and allowed (0: no limit), the eviction policy, the number of keys, and
    the bytes of each of `KEYS`, largest first; raises RedisError."""
    info = connection.info("memory")
    with connection.pipeline(transaction=False) as pipe:
        pipe.dbsize()
        for key in KEYS.values():
            pipe.memory_usage(key)
        keys, *sizes = pipe.execute()
    held = {name: int(size or 0) for name, size in zip(KEYS, sizes, strict=True)}
    return {
        "used_bytes": int(info.get("used_memory", 0)),
        "max_bytes": int(info.get("maxmemory", 0)),
        "policy": str(info.get("maxmemory_policy", "")),
        "keys": int(keys),
        "largest": dict(sorted(held.items(), key=lambda pair: -pair[1])),
    }
