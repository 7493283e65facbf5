"""Finding the entry for a code as a webhook reports it: known, in the other api, or a guess.

Workers call `lookup` thousands of times a second: known codes cost two dict look-ups, and
guesses for unknown codes are cached.
"""

from __future__ import annotations

import dataclasses
import functools
import re

from catalog.entry import APIS, Entry
from catalog.store import API_ALIASES, load, normalize_api

# Codes arrive as ints, numeric strings, or "131042: Business eligibility payment issue"
# (the `external_error` form some tools store); anything else is garbage.
_CODE_TEXT = re.compile(r"\s*#?(\d{1,15})(?:\s*[:：].*)?\s*", re.DOTALL)

_OTHER = {"cloud": "on_premises", "on_premises": "cloud"}


def parse_code(code: object) -> int | None:
    """Return the integer error code in `code`, or None when there is none."""
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code if code >= 0 else None
    if isinstance(code, float):
        return int(code) if code.is_integer() and code >= 0 else None
    if isinstance(code, str):
        match = _CODE_TEXT.fullmatch(code)
        return int(match.group(1)) if match else None
    return None


def lookup(code: int | str, api: str | None = None) -> Entry:
    """Return the entry for `code`; never raises for a bad code (a guess has `known=False`).

    `api` ("cloud", "on_premises" or "on-premises") is searched first; a code found only in the
    other api answers from there (some providers put Cloud codes in On-Premises payloads). With
    no api, Cloud is searched first: the On-Premises API is being retired. An unknown api raises
    ValueError, since that is a caller's bug rather than bad input.
    """
    by_api = load().by_api
    # Fast path for the common case: a known int code with a canonical api name.
    if type(code) is int:
        first = "cloud" if api is None else API_ALIASES.get(api) if type(api) is str else None
        if first is not None:
            entry = by_api[first].get(code) or by_api[_OTHER[first]].get(code)
            if entry is not None:
                return entry
    canonical = normalize_api(api)
    number = parse_code(code)
    if number is None:
        return _guess(None, canonical)
    order = (canonical, _OTHER[canonical]) if canonical else APIS
    for name in order:
        entry = by_api[name].get(number)
        if entry is not None:
            return entry
    return _guess(number, canonical)


@functools.lru_cache(maxsize=4096)
def _guess(code: int | None, api: str | None) -> Entry:
    """Best-guess entry from the code's range, requested api's ranges first."""
    catalog = load()
    if code is not None:
        ranges = sorted(catalog.ranges, key=lambda r: r.api != (api or "cloud"))
        for rng in ranges:
            if rng.low <= code <= rng.high:
                if rng.alias_of is not None:
                    # A documented range (e.g. Graph API 200-299): same meaning, known.
                    base = catalog.by_api[rng.api][rng.alias_of]
                    return dataclasses.replace(base, code=code)
                assert rng.template is not None
                return _fill(rng.template, rng.api, code)
    return _fill(catalog.unknown, api or "cloud", code)


def _fill(template: Entry, api: str, code: int | None) -> Entry:
    page = load().by_api[api]
    # Every entry of an api shares the same Meta page, so borrow the href from any of them.
    href = next(iter(page.values())).href
    return dataclasses.replace(template, api=api, code=code, href=href, source=(href,))
