"""Health entries: what each account, template and phone-number webhook event means.

The data file `catalog/data/health.json` holds an entry per webhook field and event value, in
Japanese and English, with its severity, its effect (`problem`, `recovery`, `benign`) and the
pages it rests on. It is read once, validated like the error entries, and handed out as frozen
`HealthEntry` objects. A value the data does not hold, of a field wastatus reads, gives the
"unknown health event" entry carrying that value (`known: false`), never an exception.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from catalog.entry import CATEGORIES, CONFIDENCES, SEVERITIES, Text
from catalog.store import CatalogError

FIELDS: tuple[str, ...] = (
    "account_alerts",
    "account_review_update",
    "account_update",
    "business_capability_update",
    "message_template_quality_update",
    "message_template_status_update",
    "phone_number_name_update",
    "phone_number_quality_update",
    "security",
    "template_category_update",
)
"""The webhook fields read as health events (`entry[].changes[].field`)."""

EFFECTS: tuple[str, ...] = ("problem", "recovery", "benign")
"""`problem` alerts; `recovery` resolves the open problem of its entity; `benign` is counted."""

ENTITY_TYPES: tuple[str, ...] = ("template", "phone_number", "waba")
"""What a health event is about: a message template, a business phone number, an account."""

REFERENCE = (
    "https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/"
)
"""Meta's webhook reference: `REFERENCE + field` is a field's page, each entry's first source."""

_KEYS = frozenset(
    {"field", "event", "title", "category", "severity", "effect", "entity", "explanation",
     "action", "source", "confidence", "doubt"}
)  # fmt: skip
_FILE = "health.json"


@dataclass(frozen=True, slots=True)
class HealthEntry:
    """What one event value of one health field means, and what to do about it."""

    field: str
    event: str | None
    title: str
    category: str
    severity: str
    effect: str
    entity: str
    explanation: Text
    action: Text
    source: tuple[str, ...]
    confidence: str
    doubt: str | None
    known: bool = True

    @property
    def key(self) -> str:
        """The entry's name as `wastatus explain` and `/catalog/health/...` take it."""
        return f"{self.field}/{self.event}"

    @property
    def alerts(self) -> bool:
        """True when the event is a problem someone should hear about."""
        return self.effect == "problem"

    def to_dict(self) -> dict[str, Any]:
        """A fresh JSON-ready dict."""
        return {
            "field": self.field,
            "event": self.event,
            "title": self.title,
            "category": self.category,
            "severity": self.severity,
            "effect": self.effect,
            "entity": self.entity,
            "explanation": self.explanation.to_dict(),
            "action": self.action.to_dict(),
            "source": list(self.source),
            "confidence": self.confidence,
            "doubt": self.doubt,
            "known": self.known,
        }


@dataclass(frozen=True, slots=True)
class _Health:
    by_key: dict[tuple[str, str], HealthEntry]
    unknown: dict[str, Any]


def _text(raw: Any, where: str) -> Text:
    if not isinstance(raw, dict) or not all(
        isinstance(raw.get(lang), str) and raw[lang].strip() for lang in ("ja", "en")
    ):
        raise CatalogError(f"{where}: needs non-empty 'ja' and 'en' texts")
    return Text(ja=raw["ja"], en=raw["en"])


def _entry(raw: Any, index: int) -> HealthEntry:
    where = f"{_FILE} entries[{index}]"
    if not isinstance(raw, dict) or set(raw) != _KEYS:
        raise CatalogError(f"{where}: keys must be exactly {', '.join(sorted(_KEYS))}")
    where = f"{_FILE} {raw['field']}/{raw['event']}"
    checks = (
        ("field", FIELDS),
        ("category", CATEGORIES),
        ("severity", SEVERITIES),
        ("effect", EFFECTS),
        ("entity", ENTITY_TYPES),
        ("confidence", CONFIDENCES),
    )
    for key, vocabulary in checks:
        if raw[key] not in vocabulary:
            raise CatalogError(f"{where}: {key} {raw[key]!r} is not one of {vocabulary}")
    if not (isinstance(raw["event"], str) and raw["event"].strip() and raw["title"].strip()):
        raise CatalogError(f"{where}: event and title must be non-empty strings")
    # Only problems alert, so only they may claim more than "info".
    if (raw["effect"] == "problem") == (raw["severity"] == "info"):
        raise CatalogError(f"{where}: a problem is above info; a recovery or benign event is info")
    source = raw["source"]
    if not (isinstance(source, list) and source and source[0] == REFERENCE + raw["field"]):
        raise CatalogError(f"{where}: source must start with Meta's page {REFERENCE}{raw['field']}")
    if raw["doubt"] is not None and not isinstance(raw["doubt"], str):
        raise CatalogError(f"{where}: doubt must be a string or null")
    return HealthEntry(
        field=raw["field"],
        event=raw["event"],
        title=raw["title"],
        category=raw["category"],
        severity=raw["severity"],
        effect=raw["effect"],
        entity=raw["entity"],
        explanation=_text(raw["explanation"], where + " explanation"),
        action=_text(raw["action"], where + " action"),
        source=tuple(source),
        confidence=raw["confidence"],
        doubt=raw["doubt"],
    )


@functools.cache
def _load() -> _Health:
    path = resources.files("catalog").joinpath("data", _FILE)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise CatalogError(f"{_FILE}: cannot read: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("entries"), list):
        raise CatalogError(f"{_FILE}: expected an object with an 'entries' list")
    by_key: dict[tuple[str, str], HealthEntry] = {}
    previous: tuple[str, str] | None = None
    for index, raw in enumerate(document["entries"]):
        entry = _entry(raw, index)
        key = (entry.field, entry.event or "")
        if previous is not None and key <= previous:
            raise CatalogError(f"{_FILE} {entry.key}: entries must be sorted, each once")
        previous = key
        by_key[key] = entry
    unknown = document.get("unknown")
    if not isinstance(unknown, dict):
        raise CatalogError(f"{_FILE}: expected an 'unknown' entry")
    _text(unknown.get("explanation"), f"{_FILE} unknown explanation")
    _text(unknown.get("action"), f"{_FILE} unknown action")
    return _Health(by_key, unknown)


def entity_of(field: str) -> str:
    """The entity type a field's events are about (the field must be one of FIELDS)."""
    for entry in _load().by_key.values():
        if entry.field == field:
            return entry.entity
    raise ValueError(f"unknown health field {field!r}")


@functools.lru_cache(maxsize=1024)
def _unknown(field: str, event: str | None) -> HealthEntry:
    raw = _load().unknown
    page = REFERENCE + field
    return HealthEntry(
        field=field,
        event=event,
        title=raw["title"],
        category=raw["category"],
        severity=raw["severity"],
        effect=raw["effect"],
        entity=entity_of(field) if field in FIELDS else "waba",
        explanation=Text(**raw["explanation"]),
        action=Text(**raw["action"]),
        source=(page,),
        confidence=raw["confidence"],
        doubt=raw["doubt"],
        known=False,
    )


def health_lookup(field: str, event: str | None) -> HealthEntry:
    """The entry for `event` of `field`; an unknown value gives the unknown entry with it."""
    entry = _load().by_key.get((field, event if isinstance(event, str) else ""))
    if entry is not None:
        return entry
    text = event if isinstance(event, str) else None
    return _unknown(field, text[:200] if text else text)


def health_entries(field: str | None = None) -> list[HealthEntry]:
    """Every known health entry, by field then event; ValueError for an unknown field."""
    if field is not None and field not in FIELDS:
        raise ValueError(f"unknown health field {field!r}; expected one of: {', '.join(FIELDS)}")
    return [e for e in _load().by_key.values() if field in (None, e.field)]


def parse_key(text: str) -> tuple[str, str] | None:
    """`field/EVENT` (or `field:EVENT`) as a pair, when the field is one of FIELDS; else None."""
    for separator in ("/", ":"):
        field, found, event = text.strip().partition(separator)
        if found and field in FIELDS and event:
            return field, event.strip().upper()
    return None
