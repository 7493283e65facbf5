"""JSON on the hot paths: orjson where it can, the standard library where it cannot.

orjson reads and writes JSON several times faster than `json`, which counts on a webhook
request that costs a few hundred µs. It refuses a few documents `json` takes (integers beyond
64 bits, lone surrogates, NaN, nesting past 1024 levels) and a few values `json` writes, so
each call falls back to `json`: what is accepted and how it reads stay exactly as before.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_compact = json.JSONEncoder(separators=(",", ":")).encode
_line = json.JSONEncoder(ensure_ascii=False, default=str, separators=(",", ":")).encode


def loads(data: bytes | str) -> Any:
    """The document in `data`; raises ValueError (or RecursionError) as `json.loads` does."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of a JSON-shaped value (raises TypeError for anything else)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, say
        return _compact(value).encode()


def log_bytes(value: dict) -> bytes:
    """One log line's UTF-8 JSON: unicode kept, anything unknown written as its str()."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return _line(value).encode()


def log_line(value: dict) -> str:
    """`log_bytes` as text, for logging's formatters."""
    return log_bytes(value).decode()
