"""The web app's own Prometheus counters (the transport to `/metrics` is `workers.metrics`)."""

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
QUARANTINE_DROPPED = Counter(
    "wastatus_quarantine_dropped",
    "Quarantined webhooks dropped, oldest first, to keep the quarantine within its bounds.",
)
EVENTS_STORED = Counter(
    "wastatus_events_stored",
    "Failure events stored for the workers, and duplicates not stored again.",
    ["result"],
)
