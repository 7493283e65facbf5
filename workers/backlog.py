"""What waits in Redis right now: the inbox, claimed batches, resends and the RQ queues by state.

Read by /readyz, /metrics and `wastatus status`, each in one pipelined round trip.
"""

from __future__ import annotations

import time

import redis

from workers import queues
from workers.inbox import intake
from workers.resend import schedule

STATES = ("queued", "started", "scheduled", "deferred", "failed")
"""Job states per queue: waiting, running, due later, waiting on another job, failed."""


def queue_lengths(connection: redis.Redis) -> dict[str, int]:
    """Inbox events, resends due now and queued (waiting) jobs per queue; raises RedisError.

    Resends are items, not jobs, so a storm of due ones is counted here or nowhere; those due
    later (131049 waits a day) are not a backlog yet.
    """
    pipe = connection.pipeline(transaction=False)
    pipe.llen(intake.INBOX)
    pipe.zcount(schedule.DUE, "-inf", time.time())
    for name in queues.ALL:
        pipe.llen(queues.get_queue(connection, name).key)
    inbox, due, *lengths = pipe.execute()
    return {"inbox": inbox, "resends-due": due, **dict(zip(queues.ALL, lengths, strict=True))}


def resends(connection: redis.Redis) -> dict[str, int]:
    """Resends due now, due later, and claimed by a sender (in flight); raises RedisError."""
    pipe = connection.pipeline(transaction=False)
    now = time.time()
    pipe.zcount(schedule.DUE, "-inf", now)
    pipe.zcount(schedule.DUE, f"({now}", "+inf")
    pipe.zcard(schedule.INFLIGHT)
    due, later, in_flight = pipe.execute()
    return {"due": due, "later": later, "in_flight": in_flight}


def queue_states(connection: redis.Redis) -> dict[str, dict[str, int]]:
    """Jobs per queue and state (`STATES`); raises RedisError."""
    pipe = connection.pipeline(transaction=False)
    for name in queues.ALL:
        queue = queues.get_queue(connection, name)
        pipe.llen(queue.key)
        pipe.zcard(queue.started_job_registry.key)
        pipe.zcard(queue.scheduled_job_registry.key)
        pipe.zcard(queue.deferred_job_registry.key)
        pipe.zcard(queue.failed_job_registry.key)
    counts = iter(pipe.execute())
    return {name: {state: next(counts) for state in STATES} for name in queues.ALL}


def claimed_batches(connection: redis.Redis) -> int:
    """Batches a drain job claimed and has not finished (SCAN, never KEYS)."""
    return sum(1 for _ in connection.scan_iter(match=intake.PROCESSING_PATTERN, count=1000))
