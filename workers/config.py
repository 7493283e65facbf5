"""Settings read from the environment, shared by the web app, the workers and the CLI.

Every setting has a `WASTATUS_` name except `REDIS_URL`, the name hosting platforms use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_DATA_DIR = ".wastatus"
# `wastatus up` writes the URL of the Redis it runs here, so other commands find it.
REDIS_URL_FILE = "redis.url"


def data_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where `wastatus up` keeps its embedded Redis and generated tokens."""
    return Path(env.get("WASTATUS_DATA_DIR") or DEFAULT_DATA_DIR).resolve()


def redis_url(env: Mapping[str, str] = os.environ) -> str | None:
    """`REDIS_URL`, else the URL of the Redis that `wastatus up` runs in the data dir."""
    if env.get("REDIS_URL"):
        return env["REDIS_URL"]
    url_file = data_dir(env) / REDIS_URL_FILE
    if url_file.is_file():
        return url_file.read_text().strip() or None
    return None


def flag(env: Mapping[str, str], name: str) -> bool:
    """A boolean setting: 1, true, yes and on (any case) are true."""
    return env.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def secrets(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of secrets, blanks dropped (several apps, or a rotation)."""
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


def seconds(env: Mapping[str, str], name: str, default: float) -> float:
    """A duration in seconds; a plain number, or with an s, m, h or d suffix."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if raw[-1] in units:
        return float(raw[:-1]) * units[raw[-1]]
    return float(raw)
