"""What several commands share: finding Redis, printing JSON, showing a time."""

from __future__ import annotations

import datetime as dt
import json
import sys

import click
import redis

from workers.connection import RedisNotConfigured, connect


def redis_or_exit() -> redis.Redis:
    """The configured Redis, or exit 2 with a sentence that says how to configure one."""
    try:
        connection = connect()
        connection.ping()
    except RedisNotConfigured as error:
        raise click.ClickException(str(error)) from None
    except redis.RedisError as error:
        raise click.ClickException(f"cannot reach Redis: {error}") from None
    return connection


def print_json(data: object) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def when(timestamp: float | None) -> str:
    """A Unix time as people read it in a table, in UTC; "never" for none."""
    if timestamp is None:
        return "never"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
