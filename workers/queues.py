"""The RQ queues wastatus uses, all with the JSON serializer (never pickle)."""

from __future__ import annotations

import redis
from rq import Queue
from rq.serializers import JSONSerializer

EVENTS = "wastatus-events"
"""Drain jobs: take failed events from the inbox, enrich and route them."""

RETRY = "wastatus-retry"
"""Resend requests to the business's sender, with backoff."""

ALERTS = "wastatus-alerts"
"""Alert group flushes and notifications to receivers."""

ALL = (EVENTS, RETRY, ALERTS)
"""Every queue, in the order a worker serves them."""


def get_queue(connection: redis.Redis, name: str = EVENTS) -> Queue:
    """The queue `name` on `connection`, serialising job data as JSON."""
    return Queue(name, connection=connection, serializer=JSONSerializer)
