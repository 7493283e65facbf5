"""RQ workers that log one JSON line per job and export what each job counted to Redis.

RQ's `Worker` forks a process per job and ends it with `os._exit`, so counters a job
increments die with it unless they leave before: `perform_job` (in the job's process) times
the job, logs it and calls `metrics.export`. `execute_job` (in the worker's own process) exports
first too, so a forked job never inherits, and sends again, counts its parent had not sent.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import redis
from rq import SimpleWorker as RQSimpleWorker
from rq import Worker as RQWorker
from rq.job import Job
from rq.queue import Queue

from workers import logs, metrics

logger = logging.getLogger("wastatus.jobs")


class TelemetryMixin:
    """Times, logs and exports the metrics of every job an RQ worker performs."""

    def execute_job(self, job: Job, queue: Queue):
        _export(self.connection)
        return super().execute_job(job, queue)

    def perform_job(self, job: Job, queue: Queue, execution) -> bool:
        started = time.perf_counter()
        wait = _seconds_waited(job)
        succeeded = super().perform_job(job, queue, execution)
        duration = time.perf_counter() - started
        outcome = "succeeded" if succeeded else "failed"
        function = job.func_name if job.func_name else "?"
        metrics.JOB_SECONDS.labels(queue=queue.name, function=function, outcome=outcome).observe(
            duration
        )
        if wait is not None:
            metrics.JOB_WAIT_SECONDS.labels(queue=queue.name).observe(wait)
        logs.log(
            logger,
            "job.finished",
            logging.INFO if succeeded else logging.WARNING,
            job_id=job.id,
            function=function,
            queue=queue.name,
            outcome=outcome,
            duration_ms=round(duration * 1000, 2),
            wait_ms=None if wait is None else round(wait * 1000, 1),
            worker=self.name,
        )
        _export(self.connection)
        return succeeded


def _export(connection: redis.Redis) -> None:
    """Export metrics; Redis trouble costs the counts, never the job's own outcome."""
    try:
        metrics.export(connection)
    except redis.RedisError as error:
        logs.log(logger, "metrics.export_failed", logging.WARNING, error=str(error))


def _seconds_waited(job: Job) -> float | None:
    if job.enqueued_at is None:
        return None
    enqueued = job.enqueued_at
    if enqueued.tzinfo is None:
        enqueued = enqueued.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - enqueued).total_seconds())


class Worker(TelemetryMixin, RQWorker):
    """RQ's forking worker, with a log line and exported metrics per job."""


class SimpleWorker(TelemetryMixin, RQSimpleWorker):
    """RQ's in-process worker (tests, platforms without fork), with the same telemetry."""
