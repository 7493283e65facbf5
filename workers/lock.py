"""A short Redis lock held by an RQ job, so two workers never act on one thing at once."""

from __future__ import annotations

import secrets

import redis

from workers.jobs import JOB_TIMEOUT

PREFIX = "wastatus:alerts:lock:"
"""`PREFIX + name`: the lock's key (the prefix predates other users than alerting)."""

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
        self.key = PREFIX + name
        self.seconds = seconds
        self.token = owner or secrets.token_hex(8)

    def acquire(self) -> bool:
        script = self.connection.register_script(_ACQUIRE)
        return bool(script(keys=[self.key], args=[self.token, int(self.seconds * 1000)]))

    def held(self) -> bool:
        return bool(self.connection.exists(self.key))

    def release(self) -> None:
        self.connection.register_script(_RELEASE)(keys=[self.key], args=[self.token])
