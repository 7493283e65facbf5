"""Bounds on what an event may hold: valid UTF-8 text, cut to size, objects cut in depth.

A signed webhook is still untrusted input (a leaked app secret, a buggy provider, a proxy
that mangles bodies). JSON may spell a lone surrogate (`"\\ud800"`), which Python reads into a
str that no UTF-8 encoder takes: stored as is, it made every later step that encodes the
event fail. And a free-text field of megabytes would be kept, copied into alert samples and
dead letters, for as long as those live. The webhook therefore passes every string of an
event through `text` and every free-form object through `value` before it stores the event,
so what is stored is valid UTF-8 everywhere downstream, of bounded size, with the original's
meaning visible: U+FFFD where a surrogate was, a marker where text was cut.
"""

from __future__ import annotations

import json
import re
from typing import Any

REPLACEMENT = "\ufffd"
"""What a lone surrogate becomes: the character decoders use for what they could not read."""

TEXT_MAX = 1024
"""Characters kept of a free-text field (title, message, href); Meta's are a sentence."""

DETAILS_MAX = 2048
"""Characters kept of an error's `details`, the longest free text Meta sends."""

ID_MAX = 512
"""Characters kept of an id (message, recipient, callback data: Meta allows 512 for that)."""

OBJECT_DEPTH = 8
"""Levels kept of a free-form object (`conversation`, `pricing`: Meta's have two or three)."""

OBJECT_ITEMS = 64
"""Keys or items kept per level of a free-form object."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def text(value: str, limit: int = TEXT_MAX) -> str:
    """`value` that any UTF-8 encoder takes, cut after `limit` characters with a marker."""
    if _SURROGATE.search(value) is not None:
        value = _SURROGATE.sub(REPLACEMENT, value)
    if len(value) > limit:
        value = f"{value[:limit]}… [cut: {len(value) - limit} more characters]"
    return value


def optional_text(value: Any, limit: int = TEXT_MAX) -> Any:
    """`text` of a string; anything else (None, mostly) unchanged."""
    return text(value, limit) if isinstance(value, str) else value


def value(
    document: Any, limit: int = TEXT_MAX, depth: int = OBJECT_DEPTH, items: int = OBJECT_ITEMS
) -> Any:
    """A JSON-shaped `document` with every string (keys too) through `text`, at most `items`
    entries a level and `depth` levels; what is left out is named by a marker string."""
    if isinstance(document, str):
        return text(document, limit)
    if not isinstance(document, (dict, list, tuple)):
        return document
    if depth <= 0:
        return "[cut: nested too deep]"
    if isinstance(document, dict):
        pairs = list(document.items())
        kept = {text(str(key), limit): value(item, limit, depth - 1, items)
                for key, item in pairs[:items]}  # fmt: skip
        if len(pairs) > items:
            kept["[cut]"] = f"{len(pairs) - items} more keys"
        return kept
    kept_items = [value(item, limit, depth - 1, items) for item in document[:items]]
    if len(document) > items:
        kept_items.append(f"[cut: {len(document) - items} more items]")
    return kept_items


def may_hold_surrogates(raw: bytes) -> bool:
    """True when JSON bytes spell a surrogate escape, so that reading them needs `value`.

    Events stored by this version never do; an older version, or a hand-made item, may.
    """
    return _ESCAPED_SURROGATE.search(raw) is not None


def clean(document: Any) -> Any:
    """Surrogates replaced throughout a stored document, nothing cut (deep as it may be)."""
    return value(document, limit=1 << 62, depth=64, items=1 << 62)


def encoded(document: dict) -> bytes:
    """`document` as UTF-8 JSON, whatever strings it holds: a dead letter or a requeued event
    that cannot be encoded would make storing it fail, and the store be tried again forever."""
    try:
        return json.dumps(document, ensure_ascii=False).encode()
    except (ValueError, RecursionError):  # a lone surrogate is a UnicodeEncodeError
        return json.dumps(clean(document), ensure_ascii=False, default=str).encode()
