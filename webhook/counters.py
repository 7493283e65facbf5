"""The web app's own Prometheus counters (the transport to `/metrics` is `workers.metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
WEBHOOK_SECONDS = Histogram(
    "wastatus_webhook_request_seconds",
    "Time the app took to answer a webhook POST, by outcome (as wastatus_webhook_requests).",
    ["outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
