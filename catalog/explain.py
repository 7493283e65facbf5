"""Merging what a webhook error said with what the catalog knows about its code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from catalog.lookup import lookup


def explain(error: Mapping[str, Any], api: str | None = None) -> dict[str, Any]:
    """Return the entry's dict for `error["code"]` plus `reported`: the webhook's own words.

    Accepts both shapes: Cloud (`message`, `error_data.details`) and On-Premises (`details`).
    Missing or odd fields become None; a non-mapping `error` is treated as empty. For a code
    the catalog does not know, the webhook's title replaces the generic guessed title.
    """
    err: Mapping[str, Any] = error if isinstance(error, Mapping) else {}
    error_data = err.get("error_data")
    details = error_data.get("details") if isinstance(error_data, Mapping) else None
    if details is None:
        details = err.get("details")
    reported = {
        "title": _text(err.get("title")),
        "message": _text(err.get("message")),
        "details": _text(details),
        "href": _text(err.get("href")),
    }
    entry = lookup(err.get("code"), api)
    result = entry.to_dict()
    if not entry.known and reported["title"]:
        result["title"] = reported["title"]
    result["reported"] = reported
    return result


def _text(value: Any) -> str | None:
    # Providers add and retype fields without notice: keep any scalar, drop containers.
    if value is None or isinstance(value, (Mapping, list, tuple)):
        return None
    return value if isinstance(value, str) else str(value)
