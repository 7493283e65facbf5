"""What every wastatus RQ job shares: its Redis, its id, how long it may run and how RQ reruns it.

"Rerun" here is RQ running a job again after it crashed or its worker died; it is neither a
resend to the business's sender (`workers.resend`) nor a notification's delivery backoff
(`workers.alerting.notifications.backoff`).
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
import time
from collections.abc import Mapping

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
