"""The error catalog: what every WhatsApp Business error code means, in Japanese and English.

Plain data plus a small API (standard library only: no Flask, no Redis). The data files in
`catalog/data/` are the source of truth, one per api (`cloud.json`, `on_premises.json`), an
entry per code sorted by code, plus `http.json` (the On-Premises page's HTTP status table) and
`ranges.json` (best guesses for codes the catalog does not hold). See docs/catalog.md.

Categories (`CATEGORIES`), i.e. whose problem a code is:
    auth          access token, permissions, certificates, passwords, two-step PIN
    transient     temporary server-side trouble; a later resend usually works
    rate_limit    too many calls or messages in a window (throughput, pair, app, WABA limits)
    parameter     the request itself is malformed or has a bad value
    recipient     the recipient cannot or will not get the message
    policy        Meta's rules: 24-hour window, account locks, country and marketing limits
    template      message templates (missing, paused, bad parameters, management)
    media         media upload, download or lookup
    payment       billing and payment setup of the account
    registration  phone-number registration, verification, migration, display name
    flow          WhatsApp Flows
    commerce      catalogs, products and (India) e-commerce compliance
    configuration client set-up (On-Premises webhook URL)
    unknown       only for best guesses about codes the catalog does not hold

Severities (`SEVERITIES`):
    critical  sending is blocked beyond this one message until a person acts
    error     this message fails until someone changes the request, content or set-up
    warning   expected to clear by itself or with a delayed resend; watch the rate
    info      an expected outcome (opt-out, experiment); nothing to fix

Health entries (`catalog.health`, `health.json`) explain account, template and number
events: `health_lookup(field, event)`, `health_entries(field=None)`.

Retry policies (`RETRY_POLICIES`): `never` (resending the same message cannot help),
`after_delay` (resend no sooner than `min_delay_seconds`), `immediate` (resend within seconds).
"""

from catalog.entry import (
    APIS,
    CATEGORIES,
    CONFIDENCES,
    LANGUAGES,
    RETRY_POLICIES,
    SEVERITIES,
    Entry,
    HttpStatus,
    Retry,
    Text,
)
from catalog.explain import explain
from catalog.health import HealthEntry, health_entries, health_lookup
from catalog.lookup import lookup, parse_code
from catalog.store import CatalogError, entries, http_statuses, normalize_api

__all__ = [
    "APIS",
    "CATEGORIES",
    "CONFIDENCES",
    "LANGUAGES",
    "RETRY_POLICIES",
    "SEVERITIES",
    "CatalogError",
    "Entry",
    "HealthEntry",
    "HttpStatus",
    "Retry",
    "Text",
    "entries",
    "explain",
    "health_entries",
    "health_lookup",
    "http_statuses",
    "lookup",
    "normalize_api",
    "parse_code",
]
