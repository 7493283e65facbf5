"""Helpers for the operations tests: payloads and a parsed /metrics scrape (worker passes are
tests/conftest.py's `work` and `drive`)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

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
