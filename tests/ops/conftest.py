"""Helpers for the operations tests: payloads, a worker run by hand, a parsed /metrics scrape."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import pytest
import redis as redis_lib
from prometheus_client.parser import text_string_to_metric_families
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from workers import queues
from workers.telemetry import SimpleWorker

_serial = itertools.count(1)


def cloud_status(status: str = "failed", code: int | None = 131049,
                 recipient: str = "819012345678") -> dict:  # fmt: skip
    """A Cloud API webhook with one status of a fresh message id (and one error if failed)."""
    serial = next(_serial)
    item: dict = {"id": f"wamid.OPS{serial:08d}", "status": status,
                  "timestamp": str(1751142888 + serial), "recipient_id": recipient}  # fmt: skip
    if status == "failed":
        item["errors"] = [{"code": code, "title": "t", "message": "m"}]
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881",
                         "phone_number_id": "106540352242922"},
            "statuses": [item]}}]}],
    }  # fmt: skip


def work(connection: redis_lib.Redis) -> None:
    """One pass of a worker: enqueue due scheduled jobs, then run every queued job (burst)."""
    scheduler = RQScheduler(queues.ALL, connection=connection, serializer=JSONSerializer)
    scheduler.prepare_registries(queues.ALL)  # without names it takes only locked queues
    scheduler.enqueue_scheduled_jobs()
    worker = SimpleWorker([queues.get_queue(connection, name) for name in queues.ALL],
                          connection=connection, serializer=JSONSerializer)  # fmt: skip
    worker.work(burst=True, logging_level="WARNING")


def work_until(connection: redis_lib.Redis, done: Callable[[], bool], limit: float = 20) -> None:
    """Run worker passes until `done()` holds; fails the test after `limit` seconds."""
    deadline = time.monotonic() + limit
    while True:
        work(connection)
        if done():
            return
        if time.monotonic() > deadline:
            pytest.fail("the workers did not get there in time")
        time.sleep(0.05)


class Scrape:
    """A parsed /metrics reply: `value(name, **labels)` sums the samples that match."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {family.name: family for family in text_string_to_metric_families(text)}
        self.samples = [sample for family in self.families.values() for sample in family.samples]

    def value(self, name: str, **labels: str) -> float:
        return sum(
            sample.value
            for sample in self.samples
            if sample.name == name
            and all(sample.labels.get(key) == value for key, value in labels.items())
        )

    def has(self, name: str) -> bool:
        return any(sample.name == name for sample in self.samples)


@pytest.fixture
def scrape(client) -> Callable[[], Scrape]:
    """Fetch and parse /metrics from the test app."""

    def get() -> Scrape:
        response = client.get("/metrics")
        assert response.status_code == 200
        return Scrape(response.get_data(as_text=True))

    return get
