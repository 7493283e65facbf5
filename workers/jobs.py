"""What every wastatus RQ job shares: its Redis, its id, how long it may run and how RQ reruns it,
and, for the token-checked jobs (a group's flush, a notification's delivery), the lock that keeps
two runs apart and the search for runs that were lost.

"Rerun" here is RQ running a job again after it crashed or its worker died; it is neither a
resend to the business's sender (`workers.resend`) nor a notification's delivery backoff
(`workers.alerting.notifications.backoff`).
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
import time
from collections.abc import Iterator, Mapping

import redis
import rq

from workers.connection import connect

JOB_TIMEOUT = 120
"""Seconds a flush or delivery job may run before RQ stops it."""

RERUN_INTERVALS = [5, 30, 120]
"""RQ runs a job again after a crash, or when its worker died mid-job (abandoned job
cleanup); the job's token check makes a second run harmless."""

FAILURE_TTL = 7 * 86400
"""How long a failed job stays in RQ's failed-job registry."""


def current_job_id() -> str | None:
    """The id of the RQ job running now, if any."""
    job = rq.get_current_job()
    return job.id if job is not None else None


def job_connection() -> redis.Redis:
    """The running job's Redis; outside a job (scripts, tests), the configured one."""
    job = rq.get_current_job()
    return job.connection if job is not None else connect()


def new_id(now: float | None = None) -> str:
    """A sortable, unique id: creation time in milliseconds plus random hex."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{millis:013d}-{secrets.token_hex(4)}"


def decode_hash(raw: Mapping[bytes, bytes]) -> dict[str, str]:
    """A Redis hash as read (bytes) as a dict of str."""
    return {key.decode(): value.decode() for key, value in raw.items()}


def enqueue_once(queue: rq.Queue, function: str, argument: str, job_id: str,
                 at: float | None = None) -> None:  # fmt: skip
    """Queue the token-checked job `job_id` (a flush, a delivery) now, or at `at`: RQ's
    scheduler keeps whole seconds, so rounded up. It gets `JOB_TIMEOUT` and `RERUN_INTERVALS`."""
    options = {"job_id": job_id, "result_ttl": 0, "failure_ttl": FAILURE_TTL,
               "job_timeout": JOB_TIMEOUT,
               "retry": rq.Retry(max=3, interval=RERUN_INTERVALS)}  # fmt: skip
    if at is None:
        queue.enqueue(function, argument, **options)
    else:
        when = dt.datetime.fromtimestamp(math.ceil(at), dt.UTC)
        queue.enqueue_at(when, function, argument, **options)


LOCK_PREFIX = "wastatus:alerts:lock:"
"""`LOCK_PREFIX + name`: the lock's key (the prefix predates other users than alerting)."""

LOCK_SECONDS = JOB_TIMEOUT + 30
"""A lock outlives the job that took it by a little: RQ stops the job at its timeout."""

_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Lock:
    """A lock on one group or notification, owned by the RQ job that holds it.

    RQ runs a job again (same id) only once its earlier run is known dead (abandoned-job
    cleanup, `Retry`), so a lock left by that run is taken over at once instead of blocking
    the rerun until it expires.
    """

    def __init__(
        self,
        connection: redis.Redis,
        name: str,
        seconds: float = LOCK_SECONDS,
        owner: str | None = None,
    ) -> None:
        self.connection = connection
        self.key = LOCK_PREFIX + name
        self.seconds = seconds
        self.token = owner or secrets.token_hex(8)

    def acquire(self) -> bool:
        script = self.connection.register_script(_ACQUIRE)
        return bool(script(keys=[self.key], args=[self.token, int(self.seconds * 1000)]))

    def held(self) -> bool:
        return bool(self.connection.exists(self.key))

    def release(self) -> None:
        self.connection.register_script(_RELEASE)(keys=[self.key], args=[self.token])


def overdue(connection: redis.Redis, index: str, before: float, lock_name: str,
            record_key: str) -> Iterator[tuple[str, int]]:  # fmt: skip
    """The ids in sorted set `index` due before `before` whose job was lost: not locked by a
    running job (`lock_name % id`), record (`record_key % id`) still there; each comes with a new
    job sequence number, so the job that was lost cannot act any more. Ids whose record is gone
    leave `index`. At most 100 a call."""
    for raw in connection.zrangebyscore(index, "-inf", before, start=0, num=100):
        found = raw.decode()
        if Lock(connection, lock_name % found).held():
            continue
        if not connection.exists(record_key % found):
            connection.zrem(index, found)
            continue
        yield found, connection.hincrby(record_key % found, "seq", 1)
