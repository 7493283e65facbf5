"""Reads a webhook body of either API into normalized failure events.

Cloud API bodies are an `object` / `entry[]` / `changes[]` / `value` envelope; On-Premises
bodies carry `statuses`, `errors`, `contacts` and `messages` at the top level. Every entry,
change, status and error is read. Items that fail validation are reported as problems with
their path; the valid ones are still taken (their duplicates are dropped on replay).
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from webhook import health_payload, schemas
from workers import bounds, fastjson
from workers.inbox.intake import event_id
from workers.outcomes.funnels import category

CLOUD = "cloud"
ON_PREMISES = "on_premises"
ON_PREMISES_KEYS = ("statuses", "errors", "messages", "contacts")
METADATA_KEYS = ("display_phone_number", "phone_number_id")
PROGRESSED = frozenset({"delivered", "read", "played"})
ENDED = frozenset({"sent", "failed"})
"""The statuses a funnel's messages are counted by (`Reading.ended`)."""
MAX_PROBLEMS = 50  # enough to fix a payload by; a broken batch of 1000 need not list all

KNOWN_FIELDS = frozenset({
    "account_alerts", "account_review_update", "account_settings_update", "account_update",
    "automatic_events", "business_capability_update", "business_status_update", "calls",
    "flows", "history", "message_echoes", "message_template_components_update",
    "message_template_quality_update", "message_template_status_update", "messages",
    "partner_solutions", "payment_configuration_update", "phone_number_name_update",
    "phone_number_quality_update", "security", "smb_app_state_sync", "smb_message_echoes",
    "template_category_update", "template_correct_category_detection", "tracking_events",
    "user_preferences",
})  # fmt: skip
"""WhatsApp Business Account webhook fields Meta documents; any other name is counted as
"other", so a body of random field names cannot add a metric series per name."""

KNOWN_OBJECTS = frozenset({"application", "instagram", "page", "permissions", "user"})
"""Other Graph API webhook objects, counted by name (`object:<name>`); the rest as
`object:other`."""


@dataclass
class Reading:
    """What one webhook body holds."""

    api: str | None = None
    events: list[dict] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    ignored_fields: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    fates: Counter = field(default_factory=Counter)
    """(status, failure code, phone number id, tracker, pricing category) → statuses, for the
    delivery funnels (`webhook/funnel.py`); raw values, bounded when flushed."""
    progressed: list[str] = field(default_factory=list)
    """The wamids that reported delivered, read or played: checked against the failures
    already alerted (`workers.fates.late`), in the background flush."""
    ended: list[tuple] = field(default_factory=list)
    """With message tracking off, each sent or failed status as (wamid, *its fates key): the
    background flush marks them so that a message that reported both counts once
    (`workers.fates.marks`)."""
    tracked: list[tuple] | None = None
    """With message tracking on, each status as (wamid, Meta's timestamp, *its fates key),
    for `workers.outcomes.timelines.record`."""

    def problem(self, path: str, messages: Any) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"{path}: {_flatten(messages)}")


def _flatten(messages: Any) -> str:
    if isinstance(messages, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in messages.items())
    if isinstance(messages, list):
        return " ".join(_flatten(message) for message in messages)
    return str(messages)


def read_body(body: bytes, received_at: float, track: bool = False) -> Reading:
    """Parse and read `body`; a body that is not JSON is a problem, never an exception.
    With `track`, every status is listed for its message's timeline too."""
    try:
        document = fastjson.loads(body)
    except (ValueError, RecursionError) as error:  # bad UTF-8 is a ValueError too
        reading = Reading()
        reading.problem("body", f"not JSON ({error.__class__.__name__})")
        return reading
    return read_document(document, received_at, track)


def read_document(document: Any, received_at: float, track: bool = False) -> Reading:
    reading = Reading(tracked=[] if track else None)
    if isinstance(document, dict) and ("object" in document or "entry" in document):
        reading.api = CLOUD
        _read_cloud(document, reading, received_at)
    elif isinstance(document, dict) and any(key in document for key in ON_PREMISES_KEYS):
        reading.api = ON_PREMISES
        _read_items(document, "", reading, received_at, context={"api": ON_PREMISES})
    else:
        reading.problem("body", "neither a Cloud API nor an On-Premises API webhook")
    return reading


def _load(schema: schemas.Schema, data: Any, path: str, reading: Reading) -> dict | None:
    if not isinstance(data, dict):
        reading.problem(path, "not an object")
        return None
    try:
        return schema.load(data)
    except schemas.ValidationError as error:
        reading.problem(path, error.messages)
        return None


def _read_cloud(document: dict, reading: Reading, received_at: float) -> None:
    """Walk the envelope; its parts only need the right JSON types, so they are checked here
    and marshmallow validates the statuses and errors, which carry what wastatus relies on."""
    obj, entries = document.get("object"), document.get("entry")
    if not isinstance(obj, str) or not isinstance(entries, list):
        reading.problem("body", "a Cloud API webhook needs 'object' (a string), 'entry' (a list)")
        return
    if obj != "whatsapp_business_account":
        reading.ignored_fields[f"object:{obj if obj in KNOWN_OBJECTS else 'other'}"] += 1
        return
    for i, entry in enumerate(entries):
        path = f"entry[{i}]"
        if not isinstance(entry, dict):
            reading.problem(path, "not an object")
            continue
        waba_id, changes = entry.get("id"), entry.get("changes", [])
        if not _optional_string(waba_id) or not isinstance(changes, list):
            reading.problem(path, "'id' must be a string and 'changes' a list")
            continue
        for j, change in enumerate(changes):
            _read_change(change, f"{path}.changes[{j}]", waba_id, reading, received_at,
                         entry.get("time"))  # fmt: skip


def _read_change(
    change: Any,
    path: str,
    waba_id: str | None,
    reading: Reading,
    received_at: float,
    entry_time: Any = None,
) -> None:
    if not isinstance(change, dict) or not isinstance(change.get("field"), str):
        reading.problem(path, "a change needs 'field' (a string)")
        return
    if change["field"] != "messages":
        _read_other_field(change, path, waba_id, reading, received_at, entry_time)
        return
    value, metadata = change.get("value"), None
    if isinstance(value, dict):
        metadata = value.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(
        _optional_string(metadata.get(key)) for key in METADATA_KEYS
    ):
        reading.problem(path, "'value' must be an object whose 'metadata' holds string ids")
        return
    context = {"api": CLOUD, "waba_id": waba_id}
    context.update((key, metadata.get(key)) for key in METADATA_KEYS)
    _read_items(value, f"{path}.value.", reading, received_at, context)


def _read_other_field(
    change: dict,
    path: str,
    waba_id: str | None,
    reading: Reading,
    received_at: float,
    entry_time: Any,
) -> None:
    """A health field becomes a health event (webhook/health_payload.py); others are counted."""
    name = change["field"]
    if name not in health_payload.HEALTH_FIELDS:
        reading.ignored_fields[name if name in KNOWN_FIELDS else "other"] += 1
        return
    event, problem = health_payload.read_change(
        name, change.get("value"), waba_id, entry_time, received_at
    )
    if event is None:
        reading.problem(f"{path}.value", problem)
    else:
        reading.events.append(event)


def _optional_string(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _read_items(
    container: dict, prefix: str, reading: Reading, received_at: float, context: dict
) -> None:
    """Read `statuses`, `errors` and `messages[].errors` of a Cloud value or On-Prem body."""
    api = context["api"]
    phone = context.get("phone_number_id")
    for k, raw in enumerate(_list(container, "statuses", prefix, reading)):
        if schemas.plainly_valid_status(raw):  # most statuses did not fail: count them, cheaply
            reading.statuses[(api, raw["status"])] += 1
            fate = _fate(raw, raw["status"], None, phone)
            reading.fates[fate] += 1
            if fate[0] in PROGRESSED:
                reading.progressed.append(raw["id"])
            if reading.tracked is not None:
                reading.tracked.append((raw["id"], _seconds(raw["timestamp"]), *fate))
            elif fate[0] in ENDED:
                reading.ended.append((raw["id"], *fate))
            continue
        status = schemas.plain_failed_status(raw) or _load(
            schemas.STATUS, raw, f"{prefix}statuses[{k}]", reading
        )
        if status is None:
            continue
        reading.statuses[(api, status["status"])] += 1
        errors = status["errors"]
        code = errors[0]["code"] if errors and status["status"] == "failed" else None
        fate = _fate(status, status["status"], code, phone)
        reading.fates[fate] += 1
        if fate[0] in PROGRESSED:
            reading.progressed.append(status["id"])
        if reading.tracked is not None:
            reading.tracked.append((status["id"], status["timestamp"], *fate))
        elif fate[0] in ENDED:
            reading.ended.append((status["id"], *fate))
        if status["status"] == "failed":
            reading.events.append(_event(context, received_at, "status", status))
    for k, raw in enumerate(_list(container, "errors", prefix, reading)):
        error = _load(schemas.ERROR, raw, f"{prefix}errors[{k}]", reading)
        if error is not None:
            reading.events.append(_event(context, received_at, "error", {"errors": [error]}))
    for k, raw in enumerate(_list(container, "messages", prefix, reading)):
        if not (isinstance(raw, dict) and raw.get("errors")):
            continue  # inbound messages are not ours to process; only their errors are
        message = _load(schemas.INBOUND_MESSAGE, raw, f"{prefix}messages[{k}]", reading)
        if message is not None:
            reading.events.append(_event(context, received_at, "message", message))


def _seconds(timestamp: object) -> int:
    """A timestamp `plainly_valid_status` accepted: an int, or digits with spaces around."""
    return timestamp if type(timestamp) is int else int(str(timestamp).strip(" "))


def _fate(status: dict, name: str, code: int | None, phone: str | None) -> tuple:
    """A status's key in the funnel tally; the category is worked out only when priced."""
    pricing, conversation = status.get("pricing"), status.get("conversation")
    kind = category(pricing, conversation) if pricing or conversation else None
    return (name, code, phone, status.get("biz_opaque_callback_data"), kind)


def _list(container: dict, key: str, prefix: str, reading: Reading) -> list:
    items = container.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        reading.problem(prefix + key, "not a list")
        return []
    return items


def _error(error: dict) -> dict:
    details = error["details"] or (error["error_data"] or {}).get("details")
    text = bounds.optional_text
    return {
        "code": error["code"],
        "title": text(error["title"]),
        "message": text(error["message"]),
        "details": text(details, bounds.DETAILS_MAX) if isinstance(details, str) else None,
        "href": text(error["href"]),
    }


_ident = functools.partial(bounds.optional_text, limit=bounds.ID_MAX)


def _event(context: dict, received_at: float, kind: str, item: dict) -> dict:
    """One normalized event; `kind` says whether a status, a message or nothing failed.

    Every string is made valid UTF-8 and cut to size here (`workers.bounds`), before the
    event's id is computed and it is stored: nothing downstream can then fail to encode it.
    """
    event = {
        "kind": kind,
        "api": context["api"],
        "waba_id": _ident(context.get("waba_id")),
        "phone_number_id": _ident(context.get("phone_number_id")),
        "display_phone_number": _ident(context.get("display_phone_number")),
        "message_id": _ident(item.get("id")),
        # For an inbound message the other party is its sender.
        "recipient_id": _ident(item.get("recipient_id") or item.get("from_")),
        "recipient_participant_id": _ident(item.get("recipient_participant_id")),
        "status": item.get("status") or "failed",
        "timestamp": item.get("timestamp"),
        "errors": [_error(error) for error in item.get("errors", ())],
        "biz_opaque_callback_data": _ident(item.get("biz_opaque_callback_data")),
        "conversation": _object(item.get("conversation")),
        "pricing": _object(item.get("pricing")),
        "received_at": received_at,
    }
    event["event_id"] = event_id(event)
    return event


def _object(document: dict | None) -> dict | None:
    """A free-form object, bounded; most are None or a flat dict of short strings."""
    return None if document is None else bounds.value(document)
