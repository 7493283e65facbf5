"""Helpers for the alert tests: enriched events and routes.

`drive` and `drive_for` (worker passes with the scheduler, from tests/conftest.py, re-exported
here for the alert tests) make intervals of a fraction of a second run whole tests in seconds.
"""

from __future__ import annotations

import itertools
import time

import catalog
from tests.conftest import drive, drive_for, work
from workers.routing.rules import Route

__all__ = ["drive", "drive_for", "enriched", "route", "work"]

_serial = itertools.count()


def enriched(
    code: int = 131049,
    count: int = 1,
    phone_number_id: str = "106540352242922",
    api: str = "cloud",
    recipient_id: str = "819012345678",
    **extra: object,
) -> list[dict]:
    """`count` distinct enriched failure events of `code`, as the drain job hands them over."""
    entry = catalog.explain({"code": code, "title": "Reported title", "message": "m"}, api)
    events = []
    for _ in range(count):
        serial = next(_serial)
        events.append({
            "event_id": f"ev{serial:08d}",
            "kind": "status",
            "api": api,
            "waba_id": "102290129340398",
            "phone_number_id": phone_number_id,
            "display_phone_number": "15550783881",
            "message_id": f"wamid.TEST{serial}",
            "recipient_id": recipient_id,
            "recipient_participant_id": None,
            "status": "failed",
            "timestamp": 1700000000 + serial,
            "errors": [{"code": code, "title": "Reported title", "message": "m"}],
            "biz_opaque_callback_data": f"order-{serial}",
            "conversation": None,
            "pricing": None,
            "received_at": time.time(),
            "code": code,
            "catalog": entry,
            **extra,
        })  # fmt: skip
    return events


def route(**fields: object) -> Route:
    """An alert route with short intervals (seconds) unless told otherwise."""
    settings = {"name": "test", "action": "alert", "group_wait": 0.2, "group_interval": 0.5,
                "repeat_interval": 3600.0, **fields}  # fmt: skip
    return Route(**settings)
