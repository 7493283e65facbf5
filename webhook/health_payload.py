"""Reads the account, template and phone-number fields of a Cloud API webhook into health events.

Each change of a field in `catalog.health.FIELDS` is validated with its marshmallow schema
(unknown keys pass, as everywhere) and normalized into one event of kind "health": its field,
its event value, the entity it is about (template, phone number or WhatsApp Business Account),
what Meta says the entity's state is now (`current`) and, where Meta says it, was (`previous`),
and the details that matter. The event is stored like a failure: deduplicated by its id (the
same change delivered again has the same id) and drained by the workers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields

from catalog.health import FIELDS
from webhook.schemas import Timestamp
from workers import bounds

MAX_TIME = 253402300800
"""Year 10000 in Unix seconds: a later (or NaN) end cannot be shown as a date."""

HEALTH_FIELDS = frozenset(FIELDS)
"""Fields read as health events; `webhook.payload` hands their changes here."""


class Ident(fields.Field):
    """An id or a short value Meta sends as a number or a string; kept as a string."""

    default_error_messages = {"invalid": "Not a string or a number."}

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.make_error("invalid")
        return bounds.text(str(value), bounds.ID_MAX)


def _text(**kwargs: Any) -> fields.String:
    return fields.String(load_default=None, allow_none=True, **kwargs)


def _ident() -> Ident:
    return Ident(load_default=None, allow_none=True)


def _object() -> fields.Dict:
    return fields.Dict(load_default=None, allow_none=True)


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE


class _Template(_Lenient):
    message_template_id = _ident()
    message_template_name = _text()
    message_template_language = _text()


class TemplateStatus(_Template):
    event = fields.String(required=True)
    reason = _text()
    message_template_category = _text()
    disable_info = _object()
    other_info = _object()
    rejection_info = _object()


class TemplateQuality(_Template):
    previous_quality_score = _text()
    new_quality_score = fields.String(required=True)


class TemplateCategory(_Template):
    previous_category = _text()
    new_category = _text()
    correct_category = _text()
    category_update_timestamp = Timestamp(load_default=None, allow_none=True)


class NumberQuality(_Lenient):
    display_phone_number = _ident()
    event = fields.String(required=True)
    old_limit = _ident()
    current_limit = _ident()
    max_daily_conversations_per_business = _ident()


class AccountUpdate(_Lenient):
    event = fields.String(required=True)
    phone_number = _ident()
    violation_info = _object()
    ban_info = _object()
    restriction_info = fields.List(fields.Dict(), load_default=None, allow_none=True)
    disconnection_info = _object()
    waba_info = _object()


class AccountAlerts(_Lenient):
    entity_type = _text()
    entity_id = _ident()
    alert_info = fields.Dict(required=True)


class AccountReview(_Lenient):
    decision = fields.String(required=True)


class NameUpdate(_Lenient):
    display_phone_number = _ident()
    decision = fields.String(required=True)
    requested_verified_name = _text()
    rejection_reason = _text()


class Capability(_Lenient):
    max_daily_conversations_per_business = _ident()
    max_daily_conversation_per_phone = _ident()
    max_phone_numbers_per_business = _ident()
    max_phone_numbers_per_waba = _ident()


class Security(_Lenient):
    display_phone_number = _ident()
    event = fields.String(required=True)
    requester = _ident()


SCHEMAS: dict[str, Schema] = {
    "message_template_status_update": TemplateStatus(),
    "message_template_quality_update": TemplateQuality(),
    "template_category_update": TemplateCategory(),
    "phone_number_quality_update": NumberQuality(),
    "account_update": AccountUpdate(),
    "account_alerts": AccountAlerts(),
    "account_review_update": AccountReview(),
    "phone_number_name_update": NameUpdate(),
    "business_capability_update": Capability(),
    "security": Security(),
}
"""One schema per health field: what wastatus relies on in its `value`."""


def read_change(
    field: str, value: Any, waba_id: str | None, entry_time: Any, received_at: float
) -> tuple[dict | None, Any]:
    """The health event of one change, or (None, the schema's complaint) when it is invalid."""
    if not isinstance(value, dict):
        return None, "'value' must be an object"
    try:
        loaded = SCHEMAS[field].load(value)
    except ValidationError as error:
        return None, error.messages
    event = normalize(field, loaded, waba_id, received_at)
    whole = isinstance(entry_time, int) and not isinstance(entry_time, bool)
    event["timestamp"] = entry_time if whole and 0 <= entry_time < 2**63 else None
    event["event_id"] = health_event_id(field, waba_id, entry_time, value)
    return event, None


def health_event_id(field: str, waba_id: str | None, entry_time: Any, value: dict) -> str:
    """The same change delivered twice has the same id: its field, account, time and value."""
    # Bounded first (depth, size), so no signed body is too deep to hash; ASCII JSON turns a
    # lone surrogate into an escape.
    canonical = json.dumps(bounds.value(value, limit=1 << 20), sort_keys=True, default=str)
    parts = ["health", field, waba_id or "", str(entry_time or ""), canonical]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).hexdigest()[:32]


def _upper(value: Any) -> str | None:
    return bounds.text(value.strip().upper(), 200) if isinstance(value, str) else None


def expiration(value: Any) -> float | None:
    """A restriction's end as Unix seconds: Meta sends seconds, some copies an ISO time.

    None for anything else, and for a time no calendar shows (NaN, beyond year 9999)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if 0 <= value < MAX_TIME else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.isdigit():
        return expiration(int(text)) if len(text) < 15 else None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return expiration(moment.timestamp())


def _template_entity(loaded: dict) -> dict:
    return {
        "type": "template",
        "id": loaded.get("message_template_id"),
        "name": loaded.get("message_template_name"),
        "language": loaded.get("message_template_language"),
    }


def _event_value(field: str, loaded: dict) -> str | None:
    if field == "message_template_quality_update":
        return _upper(loaded["new_quality_score"])
    if field == "template_category_update":
        return "RECATEGORIZATION_SCHEDULED" if loaded.get("correct_category") else "RECATEGORIZED"
    if field in ("account_review_update", "phone_number_name_update"):
        return _upper(loaded["decision"])
    if field == "account_alerts":
        return _upper(loaded["alert_info"].get("alert_type"))
    if field == "business_capability_update":
        return "CAPABILITY_UPDATE"
    event = _upper(loaded["event"])
    if field == "account_update" and event == "DISABLED_UPDATE":
        state = _upper((loaded.get("ban_info") or {}).get("waba_ban_state"))
        return state or event
    return event


def normalize(field: str, loaded: dict, waba_id: str | None, received_at: float) -> dict:
    """One health event from a validated change `value` (see docs/alerts.md for its fields)."""
    event_value = _event_value(field, loaded)
    previous: dict[str, Any] = {}
    current: dict[str, Any] = {}
    details: dict[str, Any] = {}
    if field in ("message_template_status_update", "message_template_quality_update",
                 "template_category_update"):  # fmt: skip
        entity = _template_entity(loaded)
    elif field in ("phone_number_quality_update", "phone_number_name_update", "security"):
        entity = {"type": "phone_number", "id": loaded.get("display_phone_number")}
    elif field == "account_alerts" and loaded.get("entity_id"):
        kind = (loaded.get("entity_type") or "").lower()
        entity_type = "phone_number" if "phone" in kind else "waba"
        entity = {"type": entity_type, "id": loaded["entity_id"]}
    else:
        entity = {"type": "waba", "id": waba_id}

    if field == "message_template_status_update":
        current["status"] = event_value
        if loaded.get("message_template_category"):
            current["category"] = _upper(loaded["message_template_category"])
        details = {key: loaded.get(key) for key in
                   ("reason", "disable_info", "other_info", "rejection_info")}  # fmt: skip
    elif field == "message_template_quality_update":
        current["quality"] = event_value
        if loaded.get("previous_quality_score"):
            previous["quality"] = _upper(loaded["previous_quality_score"])
    elif field == "template_category_update":
        if event_value == "RECATEGORIZED":
            current["category"] = _upper(loaded.get("new_category"))
            if loaded.get("previous_category"):
                previous["category"] = _upper(loaded["previous_category"])
        else:
            current["category"] = _upper(loaded.get("new_category"))
            details = {
                "correct_category": _upper(loaded.get("correct_category")),
                "category_update_timestamp": loaded.get("category_update_timestamp"),
            }
    elif field == "phone_number_quality_update":
        if loaded.get("current_limit"):
            current["tier"] = loaded["current_limit"]
        if loaded.get("old_limit"):
            previous["tier"] = loaded["old_limit"]
        if event_value in ("FLAGGED", "UNFLAGGED"):
            current["flag"] = event_value
        details = {"max_daily_conversations_per_business":
                   loaded.get("max_daily_conversations_per_business")}  # fmt: skip
    elif field == "account_update":
        keys = ("violation_info", "ban_info", "disconnection_info", "phone_number")
        details = {key: loaded.get(key) for key in keys}
        if event_value in ("SCHEDULE_FOR_DISABLE", "DISABLE", "REINSTATE", "DISABLED_UPDATE"):
            current["ban"] = event_value
        elif event_value == "ACCOUNT_RESTRICTION":
            current["restrictions"] = [
                {"type": _upper(item.get("restriction_type")),
                 "expiration": expiration(item.get("expiration"))}
                for item in (loaded.get("restriction_info") or [])[:bounds.OBJECT_ITEMS]
            ]  # fmt: skip
        elif event_value == "ACCOUNT_VIOLATION":
            current["violation"] = _upper(
                (loaded.get("violation_info") or {}).get("violation_type")
            )
        else:
            current["status"] = event_value
    elif field == "account_alerts":
        info = loaded["alert_info"]
        current["alert"] = event_value
        details = {key: info.get(key) for key in
                   ("alert_severity", "alert_status", "alert_description")}  # fmt: skip
    elif field in ("account_review_update", "phone_number_name_update"):
        current["decision"] = event_value
        details = {key: loaded.get(key) for key in ("requested_verified_name", "rejection_reason")
                   if key in loaded}  # fmt: skip
    elif field == "business_capability_update":
        keys = ("max_daily_conversations_per_business", "max_daily_conversation_per_phone",
                "max_phone_numbers_per_business", "max_phone_numbers_per_waba")  # fmt: skip
        current = {key: loaded[key] for key in keys if loaded.get(key) is not None}
    elif field == "security":
        current["security"] = event_value
        details = {"requester": loaded.get("requester")}

    entity = bounds.value({key: value for key, value in entity.items() if value is not None})
    return {
        "kind": "health",
        "api": "cloud",
        "field": field,
        "event": event_value,
        "waba_id": waba_id,
        "entity": entity,
        "entity_type": entity["type"],
        "entity_id": entity.get("id"),
        "template_id": entity.get("id") if entity["type"] == "template" else None,
        "template_name": entity.get("name"),
        "template_language": entity.get("language"),
        "display_phone_number": entity.get("id") if entity["type"] == "phone_number" else None,
        "previous": bounds.value(previous),
        "current": bounds.value(current),
        "details": bounds.value({k: v for k, v in details.items() if v is not None}),
        "errors": [],
        "received_at": received_at,
    }
