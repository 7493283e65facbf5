"""Replaying a dead letter: each kind goes back to the stage that owns that kind of work.

An alert goes back to its receivers as a new notification (same event ids); a resend that ran
out or a poison event goes back into the inbox, so the drain job routes it again from the start.
The dead-letter store itself knows none of them (`workers.outcomes.deadletters`).
"""

from __future__ import annotations

import redis

from workers.alerting import notifications
from workers.inbox import intake
from workers.outcomes import deadletters
from workers.outcomes.deadletters import Removal


def _notification(connection: redis.Redis, item: dict, remove: Removal) -> dict:
    return {"requeued": "notification", "id": notifications.redeliver(connection, item, remove)}


def _event(connection: redis.Redis, item: dict, remove: Removal) -> dict:
    event = item.get("event", item)
    intake.requeue(connection, event, remove)
    return {"requeued": "inbox", "event_id": event.get("event_id")}


REPLAYERS: dict[str, deadletters.Replayer] = {
    "alert": _notification,
    "retry": _event,
    "event": _event,
}
"""The replayer of each dead-letter kind (`deadletters.KINDS`)."""


def replay(connection: redis.Redis, dead_id: str) -> dict:
    """Send dead letter `dead_id` around again and remove it; returns what was done."""
    return deadletters.replay(connection, dead_id, REPLAYERS)
