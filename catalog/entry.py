"""The catalog's value types and the fixed vocabularies every entry is checked against.

Nothing here reads files: `catalog.store` builds these objects once from the packaged JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

APIS: tuple[str, ...] = ("cloud", "on_premises")
"""The two WhatsApp Business APIs, as spelt in the data files and in `Entry.api`."""

CATEGORIES: tuple[str, ...] = (
    "auth",
    "transient",
    "rate_limit",
    "parameter",
    "recipient",
    "policy",
    "template",
    "media",
    "payment",
    "registration",
    "flow",
    "commerce",
    "configuration",
    "unknown",
)
"""Whose problem a code is, as simple identifiers (see docs/catalog.md for each one's meaning).

`unknown` is used only by best-guess entries for codes the catalog does not hold.
"""

SEVERITIES: tuple[str, ...] = ("critical", "error", "warning", "info")
"""How loudly to alert, from "sending is blocked for everyone until a person acts" to "expected"."""

RETRY_POLICIES: tuple[str, ...] = ("never", "after_delay", "immediate")
"""Whether resending the same message can help, and when."""

CONFIDENCES: tuple[str, ...] = ("high", "medium", "low")
"""How well the reference sources back an entry's code, title and meaning."""

LANGUAGES: tuple[str, ...] = ("ja", "en")
"""Languages every explanation and action is written in."""


@dataclass(frozen=True, slots=True)
class Text:
    """One text in both languages."""

    ja: str
    en: str

    def get(self, lang: str) -> str:
        """Return the text in `lang` ("ja" or "en"); English for anything else."""
        return self.ja if lang == "ja" else self.en

    def to_dict(self) -> dict[str, str]:
        return {"ja": self.ja, "en": self.en}


@dataclass(frozen=True, slots=True)
class Retry:
    """Whether a resend can help: `policy` is one of RETRY_POLICIES, `why` says on what grounds."""

    policy: str
    min_delay_seconds: int | None
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "min_delay_seconds": self.min_delay_seconds, "why": self.why}


@dataclass(frozen=True, slots=True)
class Entry:
    """What one error code means, whose problem it is, and what to do about it.

    `known` is False for a best guess made from the code's range (the code is not in the data).
    """

    api: str
    code: int | None
    title: str
    category: str
    severity: str
    retry: Retry
    explanation: Text
    action: Text
    equivalent: tuple[int, ...]
    deprecated: bool
    href: str
    source: tuple[str, ...]
    confidence: str
    doubt: str | None
    http_status: int | None = None
    known: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Return a fresh JSON-ready dict (callers may change it freely)."""
        return {
            "api": self.api,
            "code": self.code,
            "title": self.title,
            "category": self.category,
            "severity": self.severity,
            "retry": self.retry.to_dict(),
            "explanation": self.explanation.to_dict(),
            "action": self.action.to_dict(),
            "equivalent": list(self.equivalent),
            "deprecated": self.deprecated,
            "http_status": self.http_status,
            "href": self.href,
            "source": list(self.source),
            "confidence": self.confidence,
            "doubt": self.doubt,
            "known": self.known,
        }


@dataclass(frozen=True, slots=True)
class HttpStatus:
    """One row of the On-Premises page's HTTP status table: a class ("4XX") or a status ("404")."""

    code: str
    kind: str
    title: str
    explanation: Text
    seed_line: int
    confidence: str
    doubt: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "kind": self.kind,
            "title": self.title,
            "explanation": self.explanation.to_dict(),
            "seed_line": self.seed_line,
            "confidence": self.confidence,
            "doubt": self.doubt,
        }
