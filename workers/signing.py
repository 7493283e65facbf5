"""Standard Webhooks signatures (standardwebhooks.com) for what wastatus posts to others.

Resend requests and alert webhooks carry `webhook-id`, `webhook-timestamp` and
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, so receivers can verify
them with any Standard Webhooks library. Secrets are `whsec_<base64 key>`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 5 * 60
"""How far a timestamp may be from now before `verify_standard_webhook` rejects it (replays)."""


class InvalidSecret(ValueError):
    """The secret is not `whsec_` followed by base64."""


class VerificationError(ValueError):
    """A request's Standard Webhooks headers do not prove it came from the secret's holder."""


def generate_secret(size: int = 24) -> str:
    """A new random secret in `whsec_<base64>` form."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(size)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key inside `secret` (`whsec_` prefix optional, as the reference libraries do)."""
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidSecret("the secret must be whsec_ followed by base64") from error
    if not key:
        raise InvalidSecret("the secret is empty")
    return key


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` of `id.timestamp.body` under `secret`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_standard_webhook(
    secret: str | None, msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers; without a secret, no signature header."""
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(timestamp))}
    if secret:
        headers["webhook-signature"] = signature(secret, msg_id, int(timestamp), body)
    return headers


def verify_standard_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise VerificationError unless one `v1` signature in `headers` matches `body`."""
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise VerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise VerificationError("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise VerificationError("webhook-timestamp is too far from now")
    expected = signature(secret, msg_id, timestamp, body)
    for candidate in signatures.split():
        if candidate.startswith("v1,") and hmac.compare_digest(candidate, expected):
            return
    raise VerificationError("no matching v1 signature")
