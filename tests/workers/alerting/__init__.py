"""Helpers for the alert tests: enriched events, routes, and running the RQ side by hand.

`drive` plays the part of a worker with its scheduler: it moves due scheduled jobs into their
queues and runs a burst `SimpleWorker` (JSON serializer), over and over, until a condition
holds; so intervals of a fraction of a second make whole tests run in seconds.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import redis
from rq import SimpleWorker
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

import catalog
from workers import queues
from workers.routing.rules import Route

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


def run_once(connection: redis.Redis) -> None:
    """Enqueue the scheduled jobs that are due, then run every queued job (burst)."""
    scheduler = RQScheduler(queues.ALL, connection=connection, serializer=JSONSerializer)
    scheduler.prepare_registries(queues.ALL)
    scheduler.enqueue_scheduled_jobs()
    worker = SimpleWorker(
        [queues.get_queue(connection, name) for name in queues.ALL],
        connection=connection,
        serializer=JSONSerializer,
    )
    worker.work(burst=True, logging_level="WARNING")


def drive(connection: redis.Redis, until: Callable[[], bool], timeout: float = 15.0) -> None:
    """Run scheduler and worker until `until()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        run_once(connection)
        if until():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in {timeout}s")
        time.sleep(0.05)


def drive_for(connection: redis.Redis, seconds: float) -> None:
    """Run scheduler and worker for `seconds`, to show that nothing more happens."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run_once(connection)
        time.sleep(0.05)
