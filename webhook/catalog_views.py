"""`GET /catalog`, `/catalog/<api>/<code>` and `/catalog/health[/<field>/<event>]`: the
catalog as public, cacheable JSON."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

import catalog
from catalog import health
from webhook.errors import error_response

bp = Blueprint("catalog", __name__)

# The catalog only changes with a deploy, so clients and proxies may keep answers for an hour.
CACHE_CONTROL = "public, max-age=3600"


@bp.get("/catalog")
def list_entries() -> Response | tuple[Response, int]:
    """Every known entry, optionally filtered by ?api= and ?category=."""
    api = request.args.get("api") or None
    category = request.args.get("category") or None
    try:
        api = catalog.normalize_api(api)
    except ValueError:
        return error_response("api-unknown")
    if category is not None and category not in catalog.CATEGORIES:
        return error_response("category-unknown")
    found = catalog.entries(api=api, category=category)
    return _cached(jsonify([entry.to_dict() for entry in found]))


@bp.get("/catalog/<api>/<code>")
def show_entry(api: str, code: str) -> Response | tuple[Response, int]:
    """One entry; an unknown code answers with the best guess (known: false), still 200."""
    try:
        canonical = catalog.normalize_api(api)
    except ValueError:
        return error_response("api-unknown")
    # Only plain digits: "131049: title" forms are for payloads, not for addresses.
    if not (code.isascii() and code.isdigit()):
        return error_response("code-invalid")
    return _cached(jsonify(catalog.lookup(int(code), canonical).to_dict()))


@bp.get("/catalog/health")
def list_health() -> Response | tuple[Response, int]:
    """Every known health entry, optionally filtered by ?field=."""
    field = request.args.get("field") or None
    if field is not None and field not in health.FIELDS:
        return error_response("field-unknown")
    return _cached(jsonify([entry.to_dict() for entry in catalog.health_entries(field)]))


@bp.get("/catalog/health/<field>/<event>")
def show_health(field: str, event: str) -> Response | tuple[Response, int]:
    """One health entry; an unknown value answers the unknown entry (known: false), still 200."""
    if field not in health.FIELDS:
        return error_response("field-unknown")
    return _cached(jsonify(catalog.health_lookup(field, event.upper()).to_dict()))


def _cached(response: Response) -> Response:
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response
