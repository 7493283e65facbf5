"""Loading the packaged data files: read once, validate, index, hand out frozen entries.

The JSON files in `catalog/data/` are the source of truth; this module refuses to load a file
that breaks the documented schema, so a bad edit fails the test suite instead of a worker.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from catalog.entry import (
    APIS,
    CATEGORIES,
    CONFIDENCES,
    RETRY_POLICIES,
    SEVERITIES,
    Entry,
    HttpStatus,
    Retry,
    Text,
)

API_FILES: dict[str, str] = {"cloud": "cloud.json", "on_premises": "on_premises.json"}
"""Data file of each api inside the package's `data/` folder."""

API_ALIASES: dict[str, str] = {
    "cloud": "cloud",
    "on_premises": "on_premises",
    "on-premises": "on_premises",
    "onpremises": "on_premises",
    "on_prem": "on_premises",
    "on-prem": "on_premises",
}
"""Spellings accepted for an api (lower-cased first); values are the canonical names."""

_ENTRY_KEYS = frozenset(
    {
        "api",
        "code",
        "title",
        "category",
        "severity",
        "retry",
        "explanation",
        "action",
        "equivalent",
        "deprecated",
        "http_status",
        "href",
        "source",
        "confidence",
        "doubt",
    }
)


class CatalogError(ValueError):
    """A data file breaks the catalog schema (raised at load time, names the file and code)."""


@dataclass(frozen=True, slots=True)
class Range:
    """A best guess for unknown codes from `low` to `high`; `alias_of` answers with a real entry."""

    api: str
    low: int
    high: int
    alias_of: int | None
    template: Entry | None


@dataclass(frozen=True, slots=True)
class Catalog:
    """Everything loaded from the data files, indexed for constant-time lookups."""

    by_api: dict[str, dict[int, Entry]]
    ordered: tuple[Entry, ...]
    ranges: tuple[Range, ...]
    unknown: Entry
    http: tuple[HttpStatus, ...]


def normalize_api(api: str | None) -> str | None:
    """Return the canonical api name ("cloud", "on_premises") or None; ValueError if unknown."""
    if api is None:
        return None
    canonical = API_ALIASES.get(api.strip().lower()) if isinstance(api, str) else None
    if canonical is None:
        raise ValueError(f"unknown api {api!r}; expected one of: cloud, on_premises, on-premises")
    return canonical


@functools.cache
def load() -> Catalog:
    """Read and validate every data file once per process."""
    by_api = {api: _load_api(api) for api in APIS}
    _check_equivalents(by_api)
    ordered = tuple(e for api in APIS for e in by_api[api].values())
    ranges_doc = _read_json("ranges.json")
    ranges = tuple(_parse_range(r, by_api) for r in _list(ranges_doc, "ranges", "ranges.json"))
    unknown = _template_entry(ranges_doc["unknown"], "cloud", "ranges.json unknown")
    http = tuple(_parse_http(h) for h in _list(_read_json("http.json"), "statuses", "http.json"))
    return Catalog(by_api=by_api, ordered=ordered, ranges=ranges, unknown=unknown, http=http)


def entries(api: str | None = None, category: str | None = None) -> list[Entry]:
    """Return known entries by api then code, optionally filtered; ValueError on bad names."""
    canonical = normalize_api(api)
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; expected one of: {', '.join(CATEGORIES)}")
    return [
        e for e in load().ordered if canonical in (None, e.api) and category in (None, e.category)
    ]


def http_statuses() -> list[HttpStatus]:
    """Return the seed's HTTP status table (class rows and status rows) in page order."""
    return list(load().http)


def _read_json(name: str) -> Any:
    path = resources.files("catalog").joinpath("data", name)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogError(f"{name}: cannot read: {exc}") from exc


def _list(doc: Any, key: str, where: str) -> list[Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise CatalogError(f"{where}: expected an object with a list under {key!r}")
    return doc[key]


def _load_api(api: str) -> dict[int, Entry]:
    name = API_FILES[api]
    index: dict[int, Entry] = {}
    previous = -1
    for raw in _list(_read_json(name), "entries", name):
        entry = _parse_entry(raw, name)
        where = f"{name} code {entry.code}"
        if entry.api != api:
            raise CatalogError(f"{where}: api {entry.api!r} in the {api} file")
        assert entry.code is not None  # _parse_entry guarantees it; narrows the type
        if entry.code in index:
            raise CatalogError(f"{where}: duplicate code")
        # Sorted files keep review diffs small and make a misplaced entry obvious.
        if entry.code < previous:
            raise CatalogError(f"{where}: entries must be sorted by code")
        previous = entry.code
        index[entry.code] = entry
    return index


def _check_equivalents(by_api: dict[str, dict[int, Entry]]) -> None:
    for api, index in by_api.items():
        other = "on_premises" if api == "cloud" else "cloud"
        for entry in index.values():
            for code in entry.equivalent:
                twin = by_api[other].get(code)
                if twin is None:
                    raise CatalogError(f"{api} {entry.code}: equivalent {other} {code} missing")
                if entry.code not in twin.equivalent:
                    raise CatalogError(f"{api} {entry.code}: {other} {code} does not point back")


def _parse_entry(raw: Any, name: str) -> Entry:
    where = f"{name} code {raw.get('code') if isinstance(raw, dict) else '?'}"
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: entry must be an object")
    keys = set(raw)
    if keys != _ENTRY_KEYS:
        missing, extra = sorted(_ENTRY_KEYS - keys), sorted(keys - _ENTRY_KEYS)
        raise CatalogError(f"{where}: missing keys {missing}, unexpected keys {extra}")
    code = raw["code"]
    if not _is_int(code) or code < 0:
        raise CatalogError(f"{where}: code must be a non-negative integer")
    equivalent = raw["equivalent"]
    if not isinstance(equivalent, list) or not all(_is_int(c) for c in equivalent):
        raise CatalogError(f"{where}: equivalent must be a list of integers")
    source = raw["source"]
    if not isinstance(source, list) or not source or not all(_is_str(s) for s in source):
        raise CatalogError(f"{where}: source must be a non-empty list of strings")
    http_status = raw["http_status"]
    if http_status is not None and not _is_int(http_status):
        raise CatalogError(f"{where}: http_status must be an integer or null")
    if not isinstance(raw["deprecated"], bool):
        raise CatalogError(f"{where}: deprecated must be true or false")
    href = raw["href"]
    if not _is_str(href) or not href.startswith("https://"):
        raise CatalogError(f"{where}: href must be an https URL")
    return Entry(
        api=_one_of(raw["api"], APIS, "api", where),
        code=code,
        title=_str(raw["title"], "title", where),
        category=_one_of(raw["category"], CATEGORIES, "category", where),
        severity=_one_of(raw["severity"], SEVERITIES, "severity", where),
        retry=_parse_retry(raw["retry"], where),
        explanation=_parse_text(raw["explanation"], "explanation", where),
        action=_parse_text(raw["action"], "action", where),
        equivalent=tuple(equivalent),
        deprecated=raw["deprecated"],
        http_status=http_status,
        href=href,
        source=tuple(source),
        confidence=_one_of(raw["confidence"], CONFIDENCES, "confidence", where),
        doubt=_optional_str(raw["doubt"], "doubt", where),
    )


def _parse_range(raw: Any, by_api: dict[str, dict[int, Entry]]) -> Range:
    where = f"ranges.json {raw.get('low') if isinstance(raw, dict) else '?'}"
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: range must be an object")
    api = _one_of(raw.get("api"), APIS, "api", where)
    low, high = raw.get("low"), raw.get("high")
    if not (_is_int(low) and _is_int(high) and 0 <= low <= high):
        raise CatalogError(f"{where}: low and high must be integers with 0 <= low <= high")
    alias_of = raw.get("alias_of")
    if alias_of is not None:
        if alias_of not in by_api[api]:
            raise CatalogError(f"{where}: alias_of {alias_of} is not a known {api} code")
        return Range(api=api, low=low, high=high, alias_of=alias_of, template=None)
    return Range(
        api=api, low=low, high=high, alias_of=None, template=_template_entry(raw, api, where)
    )


def _template_entry(raw: Any, api: str, where: str) -> Entry:
    """Build the shared part of a best-guess entry; lookup fills in the api and code."""
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: expected an object")
    return Entry(
        api=api,
        code=None,
        title=_str(raw.get("title"), "title", where),
        category=_one_of(raw.get("category"), CATEGORIES, "category", where),
        severity=_one_of(raw.get("severity"), SEVERITIES, "severity", where),
        retry=_parse_retry(raw.get("retry"), where),
        explanation=_parse_text(raw.get("explanation"), "explanation", where),
        action=_parse_text(raw.get("action"), "action", where),
        equivalent=(),
        deprecated=False,
        href="",
        source=(),
        confidence="low",
        doubt="Code not in the catalog; this entry is a guess from the code's range.",
        known=False,
    )


def _parse_http(raw: Any) -> HttpStatus:
    where = f"http.json {raw.get('code') if isinstance(raw, dict) else '?'}"
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: row must be an object")
    seed_line = raw.get("seed_line")
    if not _is_int(seed_line):
        raise CatalogError(f"{where}: seed_line must be an integer")
    return HttpStatus(
        code=_str(raw.get("code"), "code", where),
        kind=_one_of(raw.get("kind"), ("class", "status"), "kind", where),
        title=_str(raw.get("title"), "title", where),
        explanation=_parse_text(raw.get("explanation"), "explanation", where),
        seed_line=seed_line,
        confidence=_one_of(raw.get("confidence"), CONFIDENCES, "confidence", where),
        doubt=_optional_str(raw.get("doubt"), "doubt", where),
    )


def _parse_retry(raw: Any, where: str) -> Retry:
    if not isinstance(raw, dict) or set(raw) != {"policy", "min_delay_seconds", "why"}:
        raise CatalogError(f"{where}: retry must have exactly policy, min_delay_seconds, why")
    policy = _one_of(raw["policy"], RETRY_POLICIES, "retry.policy", where)
    delay = raw["min_delay_seconds"]
    # A delay only makes sense for after_delay, and after_delay is useless without one.
    if policy == "after_delay" and not (_is_int(delay) and delay > 0):
        raise CatalogError(f"{where}: after_delay needs a positive min_delay_seconds")
    if policy != "after_delay" and delay is not None:
        raise CatalogError(f"{where}: min_delay_seconds must be null for {policy}")
    return Retry(policy=policy, min_delay_seconds=delay, why=_str(raw["why"], "retry.why", where))


def _parse_text(raw: Any, field: str, where: str) -> Text:
    if not isinstance(raw, dict) or set(raw) != {"ja", "en"}:
        raise CatalogError(f"{where}: {field} must have exactly ja and en")
    return Text(ja=_str(raw["ja"], f"{field}.ja", where), en=_str(raw["en"], f"{field}.en", where))


def _one_of(value: Any, allowed: tuple[str, ...], field: str, where: str) -> str:
    if value not in allowed:
        raise CatalogError(f"{where}: {field} {value!r} not one of {', '.join(allowed)}")
    return value


def _str(value: Any, field: str, where: str) -> str:
    if not _is_str(value):
        raise CatalogError(f"{where}: {field} must be a non-empty string")
    return value


def _optional_str(value: Any, field: str, where: str) -> str | None:
    return None if value is None else _str(value, field, where)


def _is_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_int(value: Any) -> bool:
    # bool is an int subclass; `true` in a data file is a typo, not a code.
    return isinstance(value, int) and not isinstance(value, bool)
