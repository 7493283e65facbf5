"""Redis connections with short timeouts, so a stopped Redis fails a request fast."""

from __future__ import annotations

import os
from collections.abc import Mapping

import redis
from redis.sentinel import Sentinel

from workers import config

DEFAULT_SENTINEL_MASTER = "mymaster"
"""The master name Redis' own sentinel.conf example monitors."""


class RedisNotConfigured(RuntimeError):
    """Neither REDIS_URL nor a Redis run by `wastatus up` was found."""


def connect(url: str | None = None, env: Mapping[str, str] = os.environ) -> redis.Redis:
    """A client for `url`, else for the configured Redis; it connects lazily.

    Without a URL, `WASTATUS_REDIS_SENTINELS` names Redis Sentinels that say which server is
    the master now; the client asks them again after a failover.
    """
    url = url or config.redis_url(env)
    timeouts = {
        "socket_connect_timeout": float(env.get("WASTATUS_REDIS_CONNECT_TIMEOUT", "1")),
        "socket_timeout": float(env.get("WASTATUS_REDIS_TIMEOUT", "5")),
    }
    if not url and env.get("WASTATUS_REDIS_SENTINELS", "").strip():
        return _sentinel_master(env, timeouts)
    if not url:
        raise RedisNotConfigured(
            "no Redis configured: set REDIS_URL (or WASTATUS_REDIS_SENTINELS), "
            "or start one with `wastatus up`"
        )
    return redis.Redis.from_url(url, health_check_interval=30, **timeouts)


def sentinel_addresses(value: str) -> list[tuple[str, int]]:
    """`host:port,host:port` (port 26379 when left out) as redis-py's Sentinel wants them."""
    found = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        host, _, port = part.rpartition(":") if ":" in part else (part, "", "26379")
        found.append((host.strip("[]"), int(port)))
    return found


def _sentinel_master(env: Mapping[str, str], timeouts: dict[str, float]) -> redis.Redis:
    sentinel_password = env.get("WASTATUS_REDIS_SENTINEL_PASSWORD") or None
    sentinel = Sentinel(
        sentinel_addresses(env["WASTATUS_REDIS_SENTINELS"]),
        sentinel_kwargs={"password": sentinel_password, **timeouts},
        **timeouts,
    )
    return sentinel.master_for(
        env.get("WASTATUS_REDIS_SENTINEL_MASTER") or DEFAULT_SENTINEL_MASTER,
        password=env.get("WASTATUS_REDIS_PASSWORD") or None,
        db=int(env.get("WASTATUS_REDIS_DB") or 0),
        health_check_interval=30,
    )
