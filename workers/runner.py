"""Runs an RQ worker on every wastatus queue, with the scheduler and the JSON serializer."""

from __future__ import annotations

import redis
from rq.serializers import JSONSerializer

from workers import intake, logs, queues
from workers.telemetry import Worker


def run_worker(connection: redis.Redis, burst: bool = False, name: str | None = None) -> bool:
    """Work until stopped (or, with `burst`, until every queue is empty); True if any job ran.

    A drain job is queued first so events left by a worker that died are picked up even
    when no new webhook arrives to ask for one.
    """
    logs.configure()
    if connection.llen(intake.INBOX) or connection.keys(intake.PROCESSING_PATTERN):
        intake.schedule_drain(connection)
    worker = Worker(
        [queues.get_queue(connection, name) for name in queues.ALL],
        connection=connection,
        serializer=JSONSerializer,
        name=name,
    )
    return worker.work(burst=burst, with_scheduler=True)
