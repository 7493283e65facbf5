"""Runs an RQ worker on every wastatus queue, with the scheduler and the JSON serializer, that
outlives Redis: an outage of any length is waited out (`workers.outage`), not a reason to quit."""

from __future__ import annotations

import contextlib
import logging
import os
import signal

import redis
from rq import worker_registration
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.worker import DequeueStrategy

from workers import backlog, drain, logs, queues, settings
from workers.alerting import groups
from workers.fates import rates, stuck
from workers.inbox import intake
from workers.outage import Outage, outage_of, wait_for_redis
from workers.resend import schedule
from workers.telemetry import Worker

logger = logging.getLogger("wastatus.worker")

SCHEDULER_STOP_SECONDS = 5.0
"""How long a stopping worker waits for its RQ scheduler process before killing it: it stops
within its 1 s interval, unless it is stuck on a Redis that accepts but does not answer (up to
the socket timeout), and then its work is moot."""


class MaintainedWorker(Worker):
    """A worker whose maintenance also re-issues work that a dead job left stranded, and that
    waits out Redis outages instead of quitting.

    A job lost with its process (SIGKILL, or Redis failing under it) is gone from RQ, and the
    wastatus code recovers its work only when it next runs: overdue flushes and deliveries in
    `groups.submit` (so only when new failures arrive), orphaned drain batches in the next drain
    job (so only when a webhook asks for one). With no new traffic they would wait forever.
    Resends claimed by a sender that died wait for their lease; `schedule.recover` puts them back
    and wakes a sender for whatever is due (a lost wake-up, a lost sender job).

    Its connection waits for Redis (see `workers.outage`), so every Redis call of RQ's work loop
    blocks through an outage and the loop goes on where it was. What the loop cannot do by
    itself after one: register the worker again (its key may have expired meanwhile), restart a
    scheduler process that died, and re-issue work stranded by a job that failed for want of
    Redis. That happens at the first heartbeat after Redis answers, keeping the worker's name.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.outage: Outage | None = outage_of(self.connection)

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        recover_stranded(self.connection)

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        # RQ 3.0's own, with `Scheduler` for its class (RQ has no setting for it).
        self.scheduler = Scheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if not burst:
            self.scheduler.start()
            return
        try:
            self.scheduler.register_birth()
            self.scheduler.enqueue_scheduled_jobs()
        finally:
            self.scheduler.release_locks()
            self.scheduler.register_death()

    # after an outage -----------------------------------------------------------------------

    def heartbeat(self, timeout=None, pipeline=None) -> None:
        super().heartbeat(timeout, pipeline)
        if pipeline is None and not self.is_horse and self.outage and self.outage.take_recovery():
            self.resume_after_outage()

    def resume_after_outage(self) -> None:
        """Register again under the same name, restart a dead scheduler, recover stranded work."""
        with self.connection.pipeline() as pipeline:
            pipeline.hset(self.key, mapping={**self.serialize(), "state": self.get_state()})
            worker_registration.register(self, pipeline)
            pipeline.expire(self.key, self.worker_ttl + 60)
            pipeline.execute()
        scheduler = self.scheduler
        if scheduler is not None and not (scheduler._process and scheduler._process.is_alive()):
            scheduler.acquire_locks(auto_start=True)
        recover_stranded(self.connection)
        logs.log(
            logger,
            "worker.resumed",
            worker=self.name,
            down_seconds=round(self.outage.last_duration or 0.0, 2),
        )

    # stopping: nothing waits for Redis any more -------------------------------------------

    def request_stop(self, signum, frame) -> None:
        if self.outage is not None:
            self.outage.stopping = True
        super().request_stop(signum, frame)

    def set_shutdown_requested_date(self) -> None:
        with contextlib.suppress(redis.RedisError):  # only `rq info` shows it; the stop goes on
            super().set_shutdown_requested_date()

    def maintain_heartbeats(self, job, execution) -> None:
        # A warm stop during an outage still waits for the work horse: skip the beat.
        try:
            super().maintain_heartbeats(job, execution)
        except redis.RedisError:
            if not (self.outage and self.outage.stopping):
                raise

    def stop_scheduler(self) -> None:
        process = self.scheduler._process if self.scheduler else None
        if process is None or not process.pid:
            return
        with contextlib.suppress(OSError):
            process.terminate()
        process.join(SCHEDULER_STOP_SECONDS)
        if process.is_alive():  # stuck on a Redis that does not answer: its lock expires
            process.kill()
            process.join()

    def teardown(self) -> None:
        if self.is_horse:
            return
        if self.outage is not None:
            self.outage.stopping = True
        if self.scheduler:
            self.stop_scheduler()
        # A stop can interrupt a blocking dequeue, and redis-py returns a Sentinel-managed
        # connection to its pool with that reply still pending: start from fresh ones.
        self.connection.connection_pool.disconnect(inuse_connections=False)
        try:
            self.register_death()
            self.unsubscribe()
        except redis.RedisError as error:
            # The worker's key expires by itself (its TTL); stopping must not wait for Redis.
            logs.log(logger, "worker.stopped_without_redis", logging.WARNING, error=str(error))


class Scheduler(RQScheduler):
    """RQ's scheduler, whose process ends with one log line when Redis fails under it.

    It does not wait for Redis (`workers.outage`: a MULTI/EXEC that moved due jobs into their
    queue must not be sent twice), and RQ would log the error with two tracebacks; its worker
    starts it again, under the same name and so with its lock, once Redis answers.
    """

    def work(self) -> None:
        try:
            super().work()
        except redis.RedisError as error:
            logs.log(
                logger,
                "scheduler.stopped",
                logging.WARNING,
                reason="Redis failed",
                error=str(error),
            )
            os._exit(1)  # a forked child: RQ's wrapper would log a traceback for SystemExit


def recover_stranded(connection: redis.Redis) -> None:
    """Re-issue overdue flushes, deliveries and lost resends; ask for a drain while batches
    are claimed; check the trackers' failure rates and the messages stuck in sent."""
    try:
        groups.recover(connection)
        schedule.recover(connection)
        if connection.scard(drain.CLAIMS) or connection.llen(intake.INBOX):
            drain.request_drain(connection)
        rates.check(connection)  # trackers failing too often (docs/alerts.md, "Message fates")
        stuck.scan(connection)  # messages stuck in sent (with message tracking on)
    except redis.RedisError as error:
        logger.warning("maintenance: recovery skipped, Redis failed: %s", error)


def run_worker(connection: redis.Redis, burst: bool = False, name: str | None = None) -> bool:
    """Work until stopped (or, with `burst`, until every queue is empty); True if any job ran.

    Redis need not be up: the worker waits for it, at start as in the middle of its work, in
    burst mode too (a burst run's promise is to empty the queues). A drain job is queued first
    so events left by a worker that died are picked up even when no new webhook asks for one.
    """
    logs.configure()
    current = settings.current()
    # Imported before the work horses fork, so no sender job pays for importing aiohttp.
    from workers.resend import sender  # noqa: F401

    wait_for_redis(connection)
    # Until RQ installs its handlers, SIGTERM must stop a worker that waits for Redis.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if connection.llen(intake.INBOX) or backlog.claimed_batches(connection):
            intake.schedule_drain(connection)
        worker = MaintainedWorker(
            [queues.get_queue(connection, name) for name in queues.ALL],
            connection=connection,
            serializer=JSONSerializer,
            name=name,
            maintenance_interval=int(current.worker_maintenance),
            worker_ttl=int(current.worker_ttl),
        )
    except KeyboardInterrupt:
        return False
    try:
        # Round-robin: after a job from one queue the worker looks at the others first, so
        # alerts never wait behind a run of resend or drain jobs (each time-boxed), nor those
        # behind alerts.
        return worker.work(
            burst=burst, with_scheduler=True, dequeue_strategy=DequeueStrategy.ROUND_ROBIN
        )
    except KeyboardInterrupt:  # stopped while starting, before RQ's own handlers
        worker.teardown()
        return False
