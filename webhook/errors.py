"""Every error reply of the web app: a stable short code, its HTTP status and its prose.

One table for every endpoint (webhook, catalog, health, metrics), so a code means one thing
and an operator finds every reply the app can give in one place.
"""

from __future__ import annotations

from flask import Response, jsonify

import catalog

ERRORS: dict[str, tuple[int, str]] = {
    # The webhook (webhook/views.py).
    "body-too-large": (413, "The request body is larger than WASTATUS_MAX_BODY allows."),
    "unauthorized": (
        401,
        "The request is not signed with a configured app secret and carries "
        "no valid On-Premises token.",
    ),
    "verification-failed": (
        403,
        "hub.mode must be 'subscribe' and hub.verify_token must match WASTATUS_VERIFY_TOKEN.",
    ),
    "storage-unavailable": (503, "Redis cannot take the events right now; retry the delivery."),
    # The catalog (webhook/catalog_views.py).
    "api-unknown": (404, "Unknown api; use cloud, on_premises or on-premises."),
    "code-invalid": (404, "The error code must be a non-negative integer."),
    "category-unknown": (400, "Unknown category; use one of: " + ", ".join(catalog.CATEGORIES)),
    "field-unknown": (404, "Unknown health field; use one of: " + ", ".join(catalog.health.FIELDS)),
    # Readiness (webhook/health.py).
    "redis-unavailable": (503, "Redis cannot be reached, so webhooks cannot be stored."),
    "backlog-too-large": (
        503,
        "More work waits than WASTATUS_READY_MAX_BACKLOG allows: the workers are not keeping up.",
    ),
    "drain-stuck": (
        503,
        "The oldest stored failure has waited longer than WASTATUS_READY_MAX_INBOX_AGE: "
        "no drain job is taking events.",
    ),
    # The console and its API (webhook/console/, webhook/api.py; docs/api.md).
    "console-unauthorized": (
        401,
        "Log in to the console, or send Authorization: Bearer with WASTATUS_CONSOLE_TOKEN.",
    ),
    "csrf-invalid": (403, "A change from a console session needs its CSRF token (X-CSRFToken)."),
    "login-limited": (429, "Too many failed logins from this address; wait 15 minutes."),
    "group-unknown": (404, "No open alert group has this id."),
    "silence-invalid": (400, "The silence cannot be stored."),
    "silence-unknown": (404, "No stored silence has this id."),
    "dead-letter-unknown": (404, "No dead letter has this id (it may have been replayed)."),
    "quarantine-unknown": (404, "No quarantined webhook has this id (it may have been replayed)."),
    "funnel-invalid": (
        400,
        "by must be tracker, phone or category, and since a duration (30m, 24h, 7d) "
        "of at most WASTATUS_FUNNEL_RETENTION.",
    ),
    "tracking-off": (
        409,
        "Message tracking is off: set WASTATUS_TRACK_MESSAGES (72h, say) on the web server.",
    ),
    "message-unknown": (404, "No status of this message id is kept (or it is older than kept)."),
    "count-changed": (
        409,
        'Replaying everything needs {"count": N} equal to how many there are now; '
        "the number changed or was not given.",
    ),
    # Anything Flask or Werkzeug raise themselves, and the last resort.
    "not-found": (404, "There is nothing at this address."),
    "method-not-allowed": (405, "This address does not take that method."),
    "bad-request": (400, "The request could not be read."),
    "internal-error": (500, "Something failed inside wastatus; it has been logged."),
}

# The code for an HTTP status that Flask or Werkzeug raise themselves (a 404 route, a 405 method).
STATUS_CODES: dict[int, str] = {
    400: "bad-request",
    401: "unauthorized",
    404: "not-found",
    405: "method-not-allowed",
    413: "body-too-large",
    429: "login-limited",
}


def error_response(
    code: str, message: str | None = None, **details: object
) -> tuple[Response, int]:
    """The JSON error reply `{"error": code, "message": ..., **details}` with the code's status."""
    status, default_message = ERRORS[code]
    return jsonify(error=code, message=message or default_message, **details), status


def code_for_status(status: int) -> str:
    """The error code for an HTTP status raised by Flask or Werkzeug themselves."""
    return STATUS_CODES.get(status, "bad-request" if 400 <= status < 500 else "internal-error")
