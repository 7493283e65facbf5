"""Structured logs: one JSON document per line, phone numbers masked, secrets never written.

Log aggregators (Loki, CloudWatch, Datadog) index JSON fields without regexes, so every line
the web app and the workers write is one JSON object. Code passes its fields with
`log(logger, "event.name", field=value, ...)`; this module masks phone numbers in the fields
named in `PHONE_FIELDS` (unless `WASTATUS_LOG_PII=1`) and redacts any field whose name looks
like a secret, wherever it is nested. Nothing here imports Flask.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

from workers import fastjson
from workers.settings import Settings, current

PHONE_FIELDS = frozenset(
    {
        "recipient_id",
        "recipient_participant_id",
        "display_phone_number",
        "wa_id",
        "from",
        "phone",
        "phone_number",
        "recipient",
    }
)
"""Fields that hold an end user's (or a business's) phone number."""

SECRET_MARKERS = ("secret", "token", "password", "authorization", "signature", "cookie")
"""A field whose name contains one of these is never written, whatever its value."""

REDACTED = "[redacted]"
_HANDLER_MARK = "_wastatus_json"
_json_handler: logging.Handler | None = None


def mask_phone(value: object) -> str:
    """The phone number with all but its last 4 digits replaced by `*` (PII stays out of logs).

    Masking is idempotent: a value masked already (a `*` and at most 4 digits) is returned as
    it is, so an alert item masked when stored and scrubbed again in a log line still shows
    its last four digits, as the docs promise, not only stars.
    """
    text = "" if value is None else str(value)
    digits = sum(ch.isdigit() for ch in text)
    if digits <= 4:
        return text if "*" in text else "*" * len(text)
    keep, out = 4, []
    for ch in reversed(text):
        if ch.isdigit() and keep:
            out.append(ch)
            keep -= 1
        elif ch.isdigit():
            out.append("*")
        else:
            out.append(ch)
    return "".join(reversed(out))


_SCALARS = frozenset({str, int, float, bool, type(None)})
_PLAIN, _SECRET, _PHONE = 0, 1, 2
_key_kinds: dict[object, int] = {}


def _kind(key: object) -> int:
    """What a field name holds, cached: field names repeat on every line."""
    kind = _key_kinds.get(key)
    if kind is None:
        name = str(key).lower()
        if any(marker in name for marker in SECRET_MARKERS):
            kind = _SECRET
        else:
            kind = _PHONE if name in PHONE_FIELDS else _PLAIN
        if len(_key_kinds) < 10_000:
            _key_kinds[key] = kind
    return kind


def scrub(value: Any, pii: bool = False) -> Any:
    """`value` with secrets redacted and (unless `pii`) phone numbers masked, recursively."""
    if isinstance(value, Mapping):
        clean = {}
        for key, item in value.items():
            kind = _kind(key)
            if kind == _SECRET:
                clean[key] = REDACTED
            elif kind == _PHONE and not pii and item is not None:
                clean[key] = (
                    [mask_phone(i) for i in item] if isinstance(item, list) else mask_phone(item)
                )
            elif type(item) in _SCALARS:
                clean[key] = item
            else:
                clean[key] = scrub(item, pii)
        return clean
    if isinstance(value, list | tuple):
        return [item if type(item) in _SCALARS else scrub(item, pii) for item in value]
    return value


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: ts, level, logger, event, then the record's fields."""

    def __init__(self, pii: bool = False) -> None:
        super().__init__()
        self.pii = pii

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            doc.update(scrub(fields, self.pii))
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return fastjson.log_line(doc)


def log(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Write `event` with `fields` (scrubbed by the formatter) if `level` is enabled."""
    if logger.isEnabledFor(level):
        # makeRecord + handle skip logging's stack walk for the caller's file and line.
        record = logger.makeRecord(logger.name, level, "", 0, event, (), None,
                                   extra={"fields": fields})  # fmt: skip
        logger.handle(record)


def log_fields(
    logger: logging.Logger, event: str, fields: dict[str, Any], level: int = logging.INFO
) -> None:
    """`log` for a hot path: `fields` must hold no phone number and no secret (not scrubbed).

    The line goes straight to the JSON handler's stream: logging's record, filter and handler
    machinery costs more than the line itself on a request that takes a few hundred µs.
    """
    handler = _json_handler
    if not logger.isEnabledFor(level):
        return
    if handler is None or handler not in logging.getLogger().handlers:
        log(logger, event, level, **fields)
        return
    doc = {"ts": round(time.time(), 3), "level": logging.getLevelName(level).lower(),
           "logger": logger.name, "event": event, **fields}  # fmt: skip
    _write_line(handler, fastjson.log_bytes(doc) + b"\n")


def _write_line(handler: logging.StreamHandler, line: bytes) -> None:
    """One line in one write(2) to the stream's file descriptor, where it has one.

    A text stream's write, flush and the handler's lock took 1.1 µs a line in isolation, one
    os.write 0.4 µs (on the webhook benchmark the difference was within its noise). A single
    write of a line is atomic for files opened to append and for pipes (up to 4 KiB), so lines
    of several threads or processes do not mix. Streams without a descriptor (a test's
    capture, a StringIO) get the line through `write`.
    """
    stream = handler.stream
    try:
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
            with handler.lock:
                stream.write(line.decode())
                stream.flush()
            return
        stream.flush()  # text written to the stream before must come out first
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view) :]
    except (OSError, ValueError):
        pass  # a log line must never fail a request; with stderr gone there is no one to tell


class _StderrHandler(logging.StreamHandler):
    """A stream handler on whatever `sys.stderr` is at the time of each record."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr


def configure(settings: Settings | None = None, stream: Any = None) -> logging.Handler:
    """Send the root logger's records to stderr as JSON lines; idempotent, returns the handler.

    `WASTATUS_LOG_LEVEL` (default INFO) sets the level: WARNING drops the per-request and
    per-job lines. `WASTATUS_LOG_PII=1` keeps phone numbers whole.
    """
    global _json_handler
    settings = settings or current()
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, _HANDLER_MARK, False)), None)
    if handler is None:
        handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
        setattr(handler, _HANDLER_MARK, True)
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter(pii=settings.log_pii))
    root.setLevel(settings.log_level)
    _json_handler = handler
    return handler
