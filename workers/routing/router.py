"""The routing decision: which routes an enriched event takes. Pure: no I/O, no clock.

The Redis and HTTP work sits around it (drain, retry, alerts); here is only data in, routes
out, so every case can be tested with plain dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workers.routing.rules import Route, Rules


def event_value(event: Mapping[str, Any], key: str) -> Any:
    """The value of matcher `key` for `event` (catalog fields come from its `catalog` entry)."""
    if key in ("category", "severity"):
        return (event.get("catalog") or {}).get(key)
    if key == "retry":
        return ((event.get("catalog") or {}).get("retry") or {}).get("policy")
    if key == "code":
        return event.get("code")
    if key == "recipient_prefix":
        return str(event.get("recipient_id") or "").lstrip("+")
    value = event.get(key)
    return None if value is None else str(value)


def matches(matchers: Mapping[str, Any] | tuple, event: Mapping[str, Any]) -> bool:
    """True when every matcher holds for `event`; a matcher's values are any-of."""
    pairs = matchers.items() if isinstance(matchers, Mapping) else matchers
    for key, values in pairs:
        options = values if isinstance(values, (list, tuple)) else (values,)
        value = event_value(event, key)
        if key == "recipient_prefix":
            if not any(value.startswith(str(prefix)) for prefix in options):
                return False
        elif value not in options:
            return False
    return True


def route(event: Mapping[str, Any], rules: Rules) -> list[Route]:
    """The routes `event` takes: the first match, plus any matches before it with `continue`.

    Routes of the file come first; an event none of them took goes to the built-in fallback.
    A retry route sends the event to `rules.alert_route` instead when resending is off or
    there is no message to resend.
    """
    taken = _walk(event, rules.routes, rules)
    return taken or _walk(event, rules.fallback, rules) or [rules.alert_route]


def _walk(event: Mapping[str, Any], routes: tuple[Route, ...], rules: Rules) -> list[Route]:
    taken: list[Route] = []
    for candidate in routes:
        if not matches(candidate.matchers, event):
            continue
        chosen = candidate
        if candidate.action == "retry" and not (rules.resend_enabled and event.get("message_id")):
            chosen = rules.alert_route
        if chosen not in taken:
            taken.append(chosen)
        if not candidate.continue_:
            break
    return taken
