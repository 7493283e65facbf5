"""Enrichment: each failed event gets the catalog's entry for its primary error.

`enriched = {**event, "code": int | None, "catalog": entry dict}`; the entry keeps both
languages and, under `catalog["reported"]`, the webhook's own words. Campaign-scale failures
repeat the same few errors, so explanations are cached by error content and copied out.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import catalog


def primary_error(event: dict) -> dict:
    """The first error of `event`, or an empty dict when it carries none."""
    errors = event.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return errors[0]
    return {}


def enrich(event: dict) -> dict:
    """A new dict: `event` plus its primary error's `code` and `catalog` entry."""
    error = primary_error(event)
    explained = _explained(
        event.get("api"),
        error.get("code"),
        error.get("title"),
        error.get("message"),
        error.get("details"),
        error.get("href"),
    )
    return {
        **event,
        "code": catalog.parse_code(error.get("code")),
        "catalog": json.loads(explained),
    }


@functools.lru_cache(maxsize=8192)
def _explained(
    api: str | None, code: Any, title: Any, message: Any, details: Any, href: Any
) -> str:
    # Cached as JSON text so every event gets its own copy that callers may change freely.
    if api not in catalog.APIS:
        api = None
    error = {"code": code, "title": title, "message": message, "details": details, "href": href}
    return json.dumps(catalog.explain(error, api), ensure_ascii=False)
