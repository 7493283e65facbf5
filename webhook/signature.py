"""Who sent a webhook: Meta's signature for the Cloud API, a shared token for On-Premises.

Every comparison of a secret is constant-time, and the signature is computed over the body
bytes as received: Meta escapes unicode, so re-serialised JSON would not match.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from flask import Request

from workers.settings import Settings

SIGNATURE_HEADER = "X-Hub-Signature-256"


def _equal(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def signature_valid(body: bytes, header: str | None, secrets: tuple[str, ...]) -> bool:
    """True when `header` is `sha256=<hex>` of `body` under any of `secrets`."""
    if not header or not header.startswith("sha256="):
        return False
    given = header[len("sha256=") :].strip().lower()
    valid = False
    for secret in secrets:  # check every secret so timing does not tell which one matched
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        valid |= _equal(expected, given)
    return valid


def token_valid(given: str | None, tokens: tuple[str, ...]) -> bool:
    """True when `given` is one of the configured On-Premises tokens."""
    if not given:
        return False
    valid = False
    for token in tokens:
        valid |= _equal(token, given)
    return valid


def bearer_token(headers: Mapping[str, str]) -> str | None:
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def authenticate(body: bytes, request: Request, settings: Settings) -> str | None:
    """How the request proved itself (`signature`, `token`, `insecure`), or None.

    The query string is parsed only when neither header proves anything: Cloud API webhooks,
    most of the traffic, carry their signature in a header.
    """
    if not settings.authentication_configured:
        return "insecure" if settings.insecure else None
    headers = request.headers
    signature = headers.get(SIGNATURE_HEADER)
    if signature is not None and signature_valid(body, signature, settings.app_secrets):
        return "signature"
    tokens = settings.onprem_tokens
    if token_valid(bearer_token(headers), tokens):
        return "token"
    # A header that proves nothing (a proxy's own Bearer, a stale one) does not hide the
    # token of the registered URL.
    if token_valid(request.args.get("token"), tokens):
        return "token"
    return None


def sign(body: bytes, secret: str) -> str:
    """The X-Hub-Signature-256 header value Meta would send for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
