"""Webhook bodies for the benchmarks: Cloud API statuses with fresh ids, signed like Meta signs.

Each body carries one status, as Meta sends them in normal traffic; a `failed` status carries
one of a few real error codes. Ids embed a run token and a counter, so no two bodies of a run
(or of two runs) are duplicates of each other unless a caller asks for one.
"""

from __future__ import annotations

import itertools
import json
import random
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

from webhook.signature import sign

WABA_ID = "102290129340398"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_NUMBER = "15550783881"
OK_STATUSES = ("sent", "delivered", "read")
FAILURES = (
    (131049, "This message was not delivered to maintain healthy ecosystem engagement."),
    (131026, "Message undeliverable"),
    (131047, "Re-engagement message"),
    (130472, "User's number is part of an experiment"),
    (131000, "Something went wrong"),
)
ERRORS_HREF = "/documentation/business-messaging/whatsapp/support/error-codes"


@dataclass(frozen=True)
class Delivery:
    """One webhook POST as it goes on the wire: body and headers, and what it carries."""

    body: bytes
    headers: dict[str, str]
    status: str
    message_id: str
    recipient_id: str


def status_item(
    message_id: str,
    recipient_id: str,
    status: str,
    timestamp: int,
    code: int | None = None,
    title: str | None = None,
) -> dict:
    """A Cloud API `statuses[]` item; `failed` ones carry one error with `code`."""
    item: dict = {
        "id": message_id,
        "status": status,
        "timestamp": str(timestamp),
        "recipient_id": recipient_id,
    }
    if status == "failed":
        item["errors"] = [
            {
                "code": code,
                "title": title,
                "message": title,
                "error_data": {"details": title},
                "href": ERRORS_HREF,
            }
        ]
    else:
        item["conversation"] = {"id": "c" + message_id[-16:], "origin": {"type": "utility"}}
        item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "utility"}
    return item


def cloud_body(statuses: list[dict]) -> bytes:
    """The Cloud API envelope around `statuses`, serialised as Meta does (ASCII, escaped)."""
    document = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": DISPLAY_NUMBER,
                                "phone_number_id": PHONE_NUMBER_ID,
                            },
                            "statuses": statuses,
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(document, separators=(",", ":")).encode()


def signed_headers(body: bytes, secret: str) -> dict[str, str]:
    """The headers Meta sends with `body`."""
    return {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, secret)}


class Generator:
    """Makes deliveries with fresh ids; `failed_share` of them are failed statuses."""

    def __init__(self, secret: str, failed_share: float, seed: int | None = None) -> None:
        self.secret = secret
        self.failed_share = failed_share
        self.random = random.Random(seed)
        self.token = secrets.token_hex(4)
        self.counter = itertools.count()

    def fresh_ids(self) -> tuple[str, str]:
        """A message id and a recipient no earlier delivery used."""
        n = next(self.counter)
        return f"wamid.bench{self.token}{n:012d}", f"81{self.random.randrange(10**9, 10**10)}"

    def delivery(self, failed: bool | None = None) -> Delivery:
        """One signed delivery of one status; `failed` None draws it at `failed_share`."""
        if failed is None:
            failed = self.random.random() < self.failed_share
        message_id, recipient_id = self.fresh_ids()
        if failed:
            code, title = self.random.choice(FAILURES)
            item = status_item(message_id, recipient_id, "failed", int(time.time()), code, title)
        else:
            status = self.random.choice(OK_STATUSES)
            item = status_item(message_id, recipient_id, status, int(time.time()))
        body = cloud_body([item])
        return Delivery(
            body, signed_headers(body, self.secret), item["status"], message_id, recipient_id
        )

    def deliveries(self, count: int) -> Iterator[Delivery]:
        for _ in range(count):
            yield self.delivery()
