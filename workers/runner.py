"""Runs an RQ worker on every wastatus queue, with the scheduler and the JSON serializer."""

from __future__ import annotations

import logging
import os

import redis
from rq.serializers import JSONSerializer
from rq.worker import DequeueStrategy

from workers import config, intake, logs, queues
from workers.telemetry import Worker

logger = logging.getLogger("wastatus.worker")

DEFAULT_MAINTENANCE_SECONDS = 60
"""How often a worker restarts a dead RQ scheduler and cleans registries (RQ's default: 10 min).

RQ's scheduler process exits on any Redis error (a restart, an outage) and a SIGKILLed worker's
scheduler lock lives on for 61 s; only this maintenance starts a scheduler again, and until
then no group flush, alert retry or resend backoff runs."""
DEFAULT_WORKER_TTL = 60
"""Worker key TTL; an idle worker wakes from its blocking dequeue every TTL - 15 s for the
maintenance above (RQ's default 420 s would leave it asleep for 405 s)."""


class MaintainedWorker(Worker):
    """A worker whose maintenance also re-issues work that a dead job left stranded.

    A job lost with its process (SIGKILL, or Redis failing under it) is gone from RQ, and the
    wastatus code recovers its work only when it next runs: overdue flushes and deliveries in
    `alerts.submit` (so only when new failures arrive), orphaned drain batches in the next drain
    job (so only when a webhook asks for one). With no new traffic they would wait forever.
    Resends claimed by a sender that died wait for their lease; `retry.recover` puts them back
    and wakes a sender for whatever is due (a lost wake-up, a lost sender job).
    """

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        recover_stranded(self.connection)


def recover_stranded(connection: redis.Redis) -> None:
    """Re-issue overdue flushes, deliveries and lost resends; ask for a drain while batches
    are claimed."""
    from workers import alerts, drain, retry  # the job modules; only the maintenance needs them

    try:
        alerts.recover(connection)
        retry.recover(connection)
        if connection.scard(drain.CLAIMS) or connection.llen(intake.INBOX):
            drain.request_drain(connection)
    except redis.RedisError as error:
        logger.warning("maintenance: recovery skipped, Redis failed: %s", error)


def run_worker(connection: redis.Redis, burst: bool = False, name: str | None = None) -> bool:
    """Work until stopped (or, with `burst`, until every queue is empty); True if any job ran.

    A drain job is queued first so events left by a worker that died are picked up even
    when no new webhook arrives to ask for one.
    """
    logs.configure()
    # Imported before the work horses fork, so no sender job pays for importing aiohttp.
    from workers import resender  # noqa: F401

    if connection.llen(intake.INBOX) or connection.keys(intake.PROCESSING_PATTERN):
        intake.schedule_drain(connection)
    worker = MaintainedWorker(
        [queues.get_queue(connection, name) for name in queues.ALL],
        connection=connection,
        serializer=JSONSerializer,
        name=name,
        maintenance_interval=int(
            config.seconds(os.environ, "WASTATUS_WORKER_MAINTENANCE", DEFAULT_MAINTENANCE_SECONDS)
        ),
        worker_ttl=int(config.seconds(os.environ, "WASTATUS_WORKER_TTL", DEFAULT_WORKER_TTL)),
    )
    # Round-robin: after a job from one queue the worker looks at the others first, so alerts
    # never wait behind a run of resend or drain jobs (each time-boxed), nor those behind alerts.
    return worker.work(
        burst=burst, with_scheduler=True, dequeue_strategy=DequeueStrategy.ROUND_ROBIN
    )
