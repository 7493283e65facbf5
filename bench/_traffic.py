"""The chaos harness's webhook traffic: what Meta and On-Premises clients send, and worse.

Each `Send` is one delivery (body, headers) plus what the harness expects of it: the event ids
of the failed statuses it carries (`expects`), whether it must be refused (`unauthenticated`),
and whether it is malformed (quarantined, no events). Kinds, drawn by weight: statuses that did
not fail, failed statuses (Cloud, signed; On-Premises, with the token), duplicates of earlier
failures (the same bytes again), late statuses of messages that already failed (out of order),
batches, malformed bodies, unauthenticated ones, poison (a lone surrogate and 100 KB of text in a
failed status) and bodies over the size limit. Health changes too (`health`): templates paused
and reinstated, numbers flagged and unflagged, benign account events, each entity's changes
alternating problem, recovery, with Meta's `time` rising per entity; duplicates resend them.
"""

from __future__ import annotations

import itertools
import json
import random
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from bench._payloads import OK_STATUSES, WABA_ID, cloud_body, signed_headers, status_item
from webhook.health_payload import health_event_id
from workers.inbox.intake import event_id

CLOUD_FAILURES = {
    131047: "Re-engagement message",  # alerted
    131049: "This message was not delivered to maintain healthy ecosystem engagement.",  # alerted
    131026: "Message undeliverable",  # silenced by the harness's rules
    130472: "User's number is part of an experiment",  # dropped by the harness's rules
    131043: "Message expired",  # resent (the catalog: resend at once)
}
ONPREM_FAILURES = {
    470: "Message failed to send because more than 24 hours have passed",  # alerted
    1017: "Not Primary Master",  # resent
}
RULES = """\
# The chaos harness's routing: every ledger outcome is reachable.
routes:
  - name: chaos-drop
    matchers: {code: [130472]}
    action: drop
  - name: chaos-resend
    matchers: {code: [131043, 1017]}
    action: retry
    retry: {attempts: 4, base_delay: 0.5s, max_delay: 2s, jitter: full}
  - name: chaos-alert
    action: alert
    group_wait: 1s
    group_interval: 2s
    repeat_interval: 1h
silences:
  - matchers: {code: [131026]}
    until: "2099-01-01T00:00:00+00:00"
    comment: the chaos harness silences 131026
"""
UNAUTH_MARKER = "chaos-unauthenticated"
MAX_BODY = 256 * 1024
"""The harness's WASTATUS_MAX_BODY: small, so a body over it costs little to send."""
POISON_TEXT = "bad \ud800 text"
"""A lone surrogate: valid JSON as an escape, no valid UTF-8 (once it stopped all alerting)."""

WEIGHTS = {
    "ok": 40,
    "failed": 30,
    "onprem_failed": 6,
    "duplicate": 6,
    "late_status": 6,
    "batch": 3,
    "malformed": 4,
    "unauthenticated": 5,
    "poison": 2,
    "oversized": 1,
    "health": 5,
}

HEALTH_TEMPLATES = tuple(f"90000000{n:02d}" for n in range(1, 13))
"""Templates the harness pauses (a problem) and reinstates (its recovery)."""
HEALTH_NUMBERS = tuple(f"155500000{n:02d}" for n in range(1, 7))
"""Phone numbers the harness flags (a problem) and unflags (its recovery)."""


@dataclass
class Send:
    """One delivery and what it should come to."""

    kind: str
    body: bytes
    headers: dict[str, str]
    expects: list[str] = field(default_factory=list)
    unauthenticated: bool = False
    malformed: bool = False
    statuses: int = 1
    too_large: bool = False
    refused: list[str] = field(default_factory=list)
    roles: dict[str, str] = field(default_factory=dict)
    """Health event id → problem, recovery or benign (failures have none)."""


def failure_id(message_id: str, recipient_id: str, code: int) -> str:
    """The event id the webhook gives a failed status (see workers.inbox.intake.event_id)."""
    event = {
        "message_id": message_id,
        "recipient_id": recipient_id,
        "recipient_participant_id": None,
        "status": "failed",
        "errors": [{"code": code}],
    }
    return event_id(event)


class Traffic:
    """Draws deliveries; `secret` signs Cloud bodies, `token` authenticates On-Premises ones."""

    def __init__(self, secret: str, token: str, seed: int | None = None) -> None:
        self.secret = secret
        self.token = token
        self.random = random.Random(seed)
        self.run = secrets.token_hex(3)
        self.counter = itertools.count()
        self.failed: list[Send] = []  # earlier failed deliveries, for duplicates
        self.failed_messages: list[tuple[str, str]] = []  # (message id, recipient), for late ones
        self.health_open: dict[str, bool] = {}  # entity → a problem sent and not recovered
        self.health_time: dict[str, int] = {}  # entity → Meta's time of its latest change
        self.roles: dict[str, str] = {}  # every health event id drawn → its role
        kinds, weights = zip(*WEIGHTS.items(), strict=True)
        self.kinds, self.weights = list(kinds), list(weights)

    def _ids(self) -> tuple[str, str]:
        n = next(self.counter)
        return f"wamid.chaos{self.run}{n:09d}", f"81{self.random.randrange(10**9, 10**10)}"

    def _now(self) -> int:
        return int(time.time())

    def _cloud_failure(self) -> tuple[dict, str]:
        message_id, recipient = self._ids()
        code = self.random.choice(list(CLOUD_FAILURES))
        item = status_item(message_id, recipient, "failed", self._now(), code, CLOUD_FAILURES[code])
        self.failed_messages.append((message_id, recipient))
        return item, failure_id(message_id, recipient, code)

    def _signed(self, kind: str, statuses: list[dict], expects: list[str]) -> Send:
        body = cloud_body(statuses)
        return Send(kind, body, signed_headers(body, self.secret), expects, statuses=len(statuses))

    def next(self) -> Send:
        kind = self.random.choices(self.kinds, self.weights)[0]
        return getattr(self, "_" + kind)()

    def __iter__(self) -> Iterator[Send]:
        while True:
            yield self.next()

    def _ok(self) -> Send:
        message_id, recipient = self._ids()
        status = self.random.choice(OK_STATUSES)
        return self._signed("ok", [status_item(message_id, recipient, status, self._now())], [])

    def _failed(self) -> Send:
        item, expected = self._cloud_failure()
        send = self._signed("failed", [item], [expected])
        self.failed.append(send)
        return send

    def _onprem_failed(self) -> Send:
        message_id, recipient = self._ids()
        message_id = "gBG" + message_id.removeprefix("wamid.")
        code = self.random.choice(list(ONPREM_FAILURES))
        item = {
            "id": message_id,
            "recipient_id": recipient,
            "status": "failed",
            "timestamp": str(self._now()),
            "type": "message",
            "errors": [{"code": code, "title": ONPREM_FAILURES[code]}],
        }
        body = json.dumps({"statuses": [item]}).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        send = Send("onprem_failed", body, headers, [failure_id(message_id, recipient, code)])
        self.failed.append(send)
        return send

    def _duplicate(self) -> Send:
        if not self.failed:
            return self._failed()
        original = self.random.choice(self.failed[-500:])
        return Send("duplicate", original.body, dict(original.headers), list(original.expects),
                    roles=dict(original.roles))  # fmt: skip

    def _late_status(self) -> Send:
        """A `sent` or `delivered` arriving after the same message's `failed` (out of order)."""
        if not self.failed_messages:
            return self._ok()
        message_id, recipient = self.random.choice(self.failed_messages[-500:])
        status = self.random.choice(("sent", "delivered"))
        item = status_item(message_id, recipient, status, self._now() - 30)
        return self._signed("late_status", [item], [])

    def _batch(self) -> Send:
        statuses, expects = [], []
        for _ in range(self.random.randrange(3, 12)):
            if self.random.random() < 0.4:
                item, expected = self._cloud_failure()
                statuses.append(item)
                expects.append(expected)
            else:
                message_id, recipient = self._ids()
                statuses.append(status_item(message_id, recipient, "read", self._now()))
        return self._signed("batch", statuses, expects)

    def _malformed(self) -> Send:
        """Authenticated but invalid: quarantined whole, answered 200, no event."""
        message_id, recipient = self._ids()
        variant = self.random.randrange(4)
        if variant == 0:
            body = b'{"object": "whatsapp_business_account", "entry": [ not json'
        else:
            item = status_item(message_id, recipient, "failed", self._now(), 131047, "x")
            if variant == 1:
                item["timestamp"] = "yesterday"
            elif variant == 2:
                item["status"] = "exploded"
            else:
                item["errors"][0]["code"] = "one-three-one"
            body = cloud_body([item])
        send = self._signed("malformed", [], [])
        send.body, send.headers, send.malformed = body, signed_headers(body, self.secret), True
        return send

    def _unauthenticated(self) -> Send:
        """A failed status nobody vouched for: must get 401 and leave no trace."""
        message_id, recipient = self._ids()
        message_id = message_id.replace("chaos", UNAUTH_MARKER)
        code = 131047
        item = status_item(message_id, recipient, "failed", self._now(), code, "x")
        body = cloud_body([item])
        variant = self.random.randrange(3)
        if variant == 0:
            headers = {"Content-Type": "application/json"}
        elif variant == 1:
            headers = signed_headers(body, "not-the-app-secret")
        else:
            headers = {"Content-Type": "application/json", "Authorization": "Bearer wrong-token"}
        return Send(
            "unauthenticated",
            body,
            headers,
            [failure_id(message_id, recipient, code)],
            unauthenticated=True,
        )

    def _poison(self) -> Send:
        """A failed status whose texts hold a lone surrogate and 100 KB of details: stored
        cleaned and cut, then routed like any other (it must not stop the drain)."""
        item, expected = self._cloud_failure()
        error = item["errors"][0]
        error["message"] = POISON_TEXT
        error["error_data"] = {"details": POISON_TEXT + " " + "x" * 100_000}
        send = self._signed("poison", [item], [expected])
        self.failed.append(send)
        return send

    def _oversized(self) -> Send:
        """A signed failed status padded past MAX_BODY: 413, and nothing of it kept."""
        item, expected = self._cloud_failure()
        item["errors"][0]["error_data"] = {"details": "x" * MAX_BODY}
        send = self._signed("oversized", [item], [])
        send.too_large, send.refused = True, [expected]
        return send

    def _health_change(self) -> tuple[dict, str, str]:
        """One health change: (its entry, its event id, its role)."""
        pick = self.random.random()
        if pick < 0.15:
            entity, field, role = "waba", "account_update", "benign"
            value: dict = {"event": self.random.choice(("VERIFIED_ACCOUNT", "PARTNER_ADDED"))}
        elif pick < 0.65:
            template = self.random.choice(HEALTH_TEMPLATES)
            entity, field = "template:" + template, "message_template_status_update"
            role = "recovery" if self.health_open.get(entity) else "problem"
            value = {"event": "REINSTATED" if role == "recovery" else "PAUSED",
                     "message_template_id": int(template),
                     "message_template_name": f"chaos_{template[-2:]}",
                     "message_template_language": "ja", "reason": "NONE"}  # fmt: skip
        else:
            display = self.random.choice(HEALTH_NUMBERS)
            entity, field = "number:" + display, "phone_number_quality_update"
            role = "recovery" if self.health_open.get(entity) else "problem"
            value = {"display_phone_number": display,
                     "event": "UNFLAGGED" if role == "recovery" else "FLAGGED",
                     "current_limit": "TIER_10K"}  # fmt: skip
        if role != "benign":
            self.health_open[entity] = role == "problem"
        at = max(self._now(), self.health_time.get(entity, 0) + 1)  # rising per entity
        self.health_time[entity] = at
        entry = {"id": WABA_ID, "time": at, "changes": [{"field": field, "value": value}]}
        return entry, health_event_id(field, WABA_ID, at, value), role

    def _health(self) -> Send:
        """One or two account, template or number changes in one signed POST."""
        entries, expects, roles = [], [], {}
        for _ in range(2 if self.random.random() < 0.25 else 1):
            entry, health_id, role = self._health_change()
            entries.append(entry)
            expects.append(health_id)
            roles[health_id] = self.roles[health_id] = role
        document = {"object": "whatsapp_business_account", "entry": entries}
        body = json.dumps(document, separators=(",", ":")).encode()
        send = Send("health", body, signed_headers(body, self.secret), expects, roles=roles)
        self.failed.append(send)
        return send
