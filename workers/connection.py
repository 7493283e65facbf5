"""Redis connections with short timeouts, so a stopped Redis fails a request fast."""

from __future__ import annotations

import redis
from redis.sentinel import Sentinel

from workers.settings import Settings, current


class RedisNotConfigured(RuntimeError):
    """Neither REDIS_URL nor a Redis run by `wastatus up` was found."""


def connect(url: str | None = None, settings: Settings | None = None) -> redis.Redis:
    """A client for `url`, else for the configured Redis; it connects lazily.

    Without a URL, `WASTATUS_REDIS_SENTINELS` names Redis Sentinels that say which server is
    the master now; the client asks them again after a failover.
    """
    settings = settings or current()
    url = url or settings.redis_url_or_embedded()
    timeouts = {
        "socket_connect_timeout": settings.redis_connect_timeout,
        "socket_timeout": settings.redis_timeout,
    }
    if not url and settings.redis_sentinels:
        return _sentinel_master(settings, timeouts)
    if not url:
        raise RedisNotConfigured(
            "no Redis configured: set REDIS_URL (or WASTATUS_REDIS_SENTINELS), "
            "or start one with `wastatus up`"
        )
    return redis.Redis.from_url(url, health_check_interval=30, **timeouts)


def _sentinel_master(settings: Settings, timeouts: dict[str, float]) -> redis.Redis:
    sentinel = Sentinel(
        list(settings.redis_sentinels),
        sentinel_kwargs={"password": settings.redis_sentinel_password, **timeouts},
        **timeouts,
    )
    return sentinel.master_for(
        settings.redis_sentinel_master,
        password=settings.redis_password,
        db=settings.redis_db,
        health_check_interval=30,
    )
