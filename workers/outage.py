"""Waiting out a Redis outage: the retry policy of a worker's own Redis connection.

RQ's work loop quits on the first Redis error it meets outside its blocking dequeue (a
heartbeat, the suspension check, maintenance, watching a work horse), and its scheduler process
dies on any. Rather than guard each of those calls, the worker's client retries every command
that failed for want of Redis (refused, reset, timed out, still loading its data, a demoted
master) until Redis answers again, reconnecting each time, so through Sentinel each attempt asks
the sentinels for the current master. The process logs once when Redis goes away and once when
it is back, not once per attempt.

Only the worker's own process waits, and what it sends again after reconnecting is bookkeeping
that is safe to repeat (heartbeats, registrations, the blocking dequeue). Processes forked from
it, RQ's work horse and its scheduler, fail at the first error as they did before: a job that
wrote in a MULTI/EXEC whose reply was lost must not write it twice, so it meets the outage as a
failure, and the drain lease, the ledger and the recovery of alerts and resends take its work
up again, as after a crash; the worker starts its scheduler again once Redis answers.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from redis.sentinel import SentinelConnectionPool

from workers import logs

logger = logging.getLogger("wastatus.worker")

FIRST_WAIT_SECONDS = 0.05
"""The scale of the waits between attempts: after the n-th failure a random wait up to
0.05 × 2ⁿ s (full jitter, so workers do not knock in step), never more than the cap."""
MAX_WAIT_SECONDS = 1.0
"""The longest wait between two attempts: Redis is back at most this long before a worker
notices, and a refused connection costs nothing, so there is no reason to wait longer."""


class Outage:
    """One process's view of Redis being away: since when, whether it was said, and whether
    the process is stopping (then nothing waits any more)."""

    def __init__(self) -> None:
        self.owner = os.getpid()
        self.stopping = False
        self.since: float | None = None
        self.attempts = 0
        self.last_duration: float | None = None
        self._recovered = False
        self._lock = threading.Lock()

    def failed(self, error: Exception) -> None:
        with self._lock:
            self.attempts += 1
            if self.since is not None:
                return
            self.since = time.monotonic()
        if self._speaks():
            logs.log(
                logger,
                "redis.unreachable",
                logging.WARNING,
                error=str(error) or type(error).__name__,
                waiting=f"retrying every {MAX_WAIT_SECONDS:g} s at most until it answers",
            )

    def answered(self) -> None:
        if self.since is None:  # the common case, without taking the lock
            return
        with self._lock:
            if self.since is None:
                return
            duration = time.monotonic() - self.since
            attempts, self.since, self.attempts = self.attempts, None, 0
            self.last_duration = duration
            self._recovered = True
        if self._speaks():
            logs.log(
                logger,
                "redis.reachable",
                logging.WARNING,
                down_seconds=round(duration, 2),
                attempts=attempts,
            )

    def take_recovery(self) -> bool:
        """True once after each outage ended, for the work that follows one."""
        with self._lock:
            recovered, self._recovered = self._recovered, False
        return recovered

    def waits(self) -> bool:
        """Whether this process waits for Redis: the worker's own, until it stops."""
        return not self.stopping and os.getpid() == self.owner

    def _speaks(self) -> bool:
        return os.getpid() == self.owner


class WaitingRetry(Retry):
    """A redis-py retry policy that waits for Redis as long as it takes, with capped backoff,
    unless the process is stopping."""

    def __init__(self, outage: Outage) -> None:
        super().__init__(
            ExponentialWithJitterBackoff(base=FIRST_WAIT_SECONDS, cap=MAX_WAIT_SECONDS),
            retries=-1,
            supported_errors=(
                redis.ConnectionError,
                redis.TimeoutError,
                socket.timeout,
                redis.ResponseError,  # only those `_demoted` accepts
            ),
        )
        self.outage = outage
        self._depth = threading.local()

    def __deepcopy__(self, memo: dict) -> WaitingRetry:
        # redis-py deep-copies the policy into every connection; they must share one outage.
        return self

    def call_with_retry(self, do, fail, is_retryable=None, with_failure_count=False):
        # Connecting is itself retried inside a command's retry; only the outermost call says
        # Redis answered, so a server that accepts connections while loading its data is
        # not "back" until a command succeeds.
        depth = getattr(self._depth, "value", 0)
        self._depth.value = depth + 1
        failures = 0
        try:
            while True:
                try:
                    result = do()
                except self._supported_errors as error:
                    if is_retryable and not is_retryable(error):
                        raise
                    if isinstance(error, redis.ResponseError) and not _demoted(error):
                        raise
                    failures += 1
                    if with_failure_count:
                        fail(error, failures)
                    else:
                        fail(error)
                    if not self.outage.waits():
                        raise
                    if failures > 1:  # a first failure is often a connection Redis closed
                        self.outage.failed(error)
                    time.sleep(self._backoff.compute(failures))
                    continue
                if depth == 0 and failures:  # a call that did not fail may not touch Redis
                    self.outage.answered()
                return result
        finally:
            self._depth.value = depth


def _demoted(error: redis.ResponseError) -> bool:
    """Whether Redis refused a command because it is a replica now (a master demoted by a
    failover, behind an unchanged REDIS_URL): READONLY for a write, UNBLOCKED for a blocking
    pop. Nothing was applied, so sending it again, on a new connection that finds the master
    where DNS or Sentinel points now, is safe."""
    return isinstance(error, redis.exceptions.ReadOnlyError) or str(error).startswith("UNBLOCKED")


class _AsksTheSentinels:
    """A Sentinel-managed connection that asks the sentinels for the master whenever it
    connects: redis-py 8 reconnects a retried command's connection (`send_packed_command`)
    at the address it had, so after a failover it would knock at the old master for ever."""

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True):
        if not self._sock and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        return super().connect_check_health(check_health, retry_socket_connect)


def wait_for_redis(connection: redis.Redis) -> Outage:
    """Make `connection` wait out outages in this process; returns the outage state.

    Call it before the connection is used: connections made before keep their old ways."""
    outage = Outage()
    connection.set_retry(WaitingRetry(outage))
    pool = connection.connection_pool
    if isinstance(pool, SentinelConnectionPool) and not issubclass(
        pool.connection_class, _AsksTheSentinels
    ):
        pool.connection_class = type(
            pool.connection_class.__name__, (_AsksTheSentinels, pool.connection_class), {}
        )
    return outage


def outage_of(connection: redis.Redis) -> Outage | None:
    """The outage state of a connection set up by `wait_for_redis`, else None."""
    retry = connection.get_retry()
    return retry.outage if isinstance(retry, WaitingRetry) else None
