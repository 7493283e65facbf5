"""What delivery needs, checked before a worker starts and by `wastatus rules check`.

Loading rules proves they are well formed; this proves they can be delivered: every receiver a
route names exists (a typo would send each notification to the dead letters), Apprise
understands every Apprise URL, a webhook receiver has an http(s) URL, and a retry route has
somewhere to resend to. Pure over the rules and the settings; asking Apprise is the only cost.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from workers.alerting import receivers
from workers.routing.rules import Rules
from workers.settings import Settings


def problems(rules: Rules, settings: Settings) -> list[str]:
    """One sentence per thing that would stop a notification or a resend; empty when none."""
    found = receivers.problems(rules.receivers)
    known = receivers.from_settings(settings)
    for spec in rules.receivers:
        try:
            made = receivers.make(spec)
        except receivers.ReceiverConfigError:
            continue  # reported above
        known[made.name] = made
    defaults = receivers.default_chain(settings)
    labelled = [
        (f"routes[{index}] ({route.name})", route) for index, route in enumerate(rules.routes)
    ]
    labelled += [
        (f"built-in route {route.name} (from defaults)", route) for route in rules.fallback
    ]
    for where, route in labelled:
        if route.action == "alert":
            for name in route.receivers or defaults:
                if name not in known:
                    found.append(f"{where}.receivers: no receiver named {name!r};"
                                 f" known: {', '.join(sorted(known))}")  # fmt: skip
        if route.action == "retry" and not settings.retry_url:
            found.append(f"{where}: a retry route, but WASTATUS_RETRY_URL is not set,"
                         " so its failures would alert instead of being resent")  # fmt: skip
    for receiver in known.values():
        if receiver.type == "webhook":
            parts = urlsplit(receiver.urls[0])
            if parts.scheme not in ("http", "https") or not parts.hostname:
                found.append(f"receiver {receiver.name}: its url is not an http(s) URL")
        found += receivers.url_problems(receiver)
    return found
