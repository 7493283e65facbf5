"""Prometheus metrics of the web app and the workers, every name prefixed `wastatus_`.

Defined once here so both sides count into the same families.
"""

from __future__ import annotations

from prometheus_client import Counter

WEBHOOK_REQUESTS = Counter(
    "wastatus_webhook_requests",
    "Webhook POSTs by outcome.",
    ["outcome"],
)
STATUSES = Counter(
    "wastatus_statuses",
    "Status updates received, by api and status.",
    ["api", "status"],
)
FIELDS_IGNORED = Counter(
    "wastatus_webhook_fields_ignored",
    "Webhook changes of fields other than messages, acknowledged and not processed.",
    ["field"],
)
EVENTS_STORED = Counter(
    "wastatus_events_stored",
    "Failure events stored for the workers, and duplicates not stored again.",
    ["result"],
)
