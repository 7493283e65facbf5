"""Every error reply of the web app: a stable short code, its HTTP status and its prose."""

from __future__ import annotations

from flask import Response, jsonify

ERRORS: dict[str, tuple[int, str]] = {
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
    "not-found": (404, "There is nothing at this address."),
    "method-not-allowed": (405, "This address does not take that method."),
    "bad-request": (400, "The request could not be read."),
    "internal-error": (500, "Something failed inside wastatus; it has been logged."),
}


def error_response(code: str, message: str | None = None) -> tuple[Response, int]:
    """The JSON error reply `{"error": code, "message": ...}` with the code's status."""
    status, default_message = ERRORS[code]
    return jsonify(error=code, message=message or default_message), status


def code_for_status(status: int) -> str:
    """The error code for an HTTP status raised by Flask or Werkzeug themselves."""
    return {
        400: "bad-request",
        401: "unauthorized",
        404: "not-found",
        405: "method-not-allowed",
        413: "body-too-large",
    }.get(status, "bad-request" if 400 <= status < 500 else "internal-error")
