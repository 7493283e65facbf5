"""Redis connections with short timeouts, so a stopped Redis fails a request fast."""

from __future__ import annotations

import os
from collections.abc import Mapping

import redis

from workers import config


class RedisNotConfigured(RuntimeError):
    """Neither REDIS_URL nor a Redis run by `wastatus up` was found."""


def connect(url: str | None = None, env: Mapping[str, str] = os.environ) -> redis.Redis:
    """A client for `url`, else for the configured Redis; it connects lazily."""
    url = url or config.redis_url(env)
    if not url:
        raise RedisNotConfigured(
            "no Redis configured: set REDIS_URL, or start one with `wastatus up`"
        )
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=float(env.get("WASTATUS_REDIS_CONNECT_TIMEOUT", "1")),
        socket_timeout=float(env.get("WASTATUS_REDIS_TIMEOUT", "5")),
        health_check_interval=30,
    )
