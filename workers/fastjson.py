"""JSON on the hot paths: orjson where it can, the standard library where it cannot.

orjson reads and writes JSON several times faster than `json`, which counts on a webhook
request that costs a few hundred µs. It differs from `json` at the edges: it reads integers
beyond 64 bits as floats (`json` keeps them whole), refuses a few documents `json` takes (lone
surrogates, NaN, numbers beyond the float range) and a few values `json` writes. Each call
therefore falls back to `json` where orjson would differ: what is accepted and how it reads
stay exactly as before. Property tests compare the two.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_LONG_DIGITS = re.compile(rb"[0-9]{19}")
"""19 digits in a row: possibly an integer beyond 64 bits, which orjson would make a float.
Webhooks carry none (ids and timestamps are shorter); the search costs about 0.3 µs."""

_compact = json.JSONEncoder(separators=(",", ":")).encode
_line = json.JSONEncoder(ensure_ascii=False, default=str, separators=(",", ":")).encode


def loads(data: bytes) -> Any:
    """The document in `data`; raises ValueError (or RecursionError) as `json.loads` does."""
    if _LONG_DIGITS.search(data) is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
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
