"""Routing rules: which failures are resent, alerted (and how grouped) or dropped.

Read from a YAML file (`WASTATUS_RULES`) shaped like Alertmanager's route tree, validated with
the path of every bad key, and handed out as frozen dataclasses. With no file, built-in routes
make zero configuration work: codes the catalog says a resend can fix go to the retry queue
(when `WASTATUS_RETRY_URL` is set), everything else alerts. See docs/rules.md for the format.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

import catalog
from workers.settings import Settings, bounds, current, format_duration, parse_duration

ACTIONS = ("alert", "retry", "drop")
JITTERS = ("full", "equal", "none")

MATCHER_KEYS = (
    "api",
    "code",
    "category",
    "severity",
    "retry",
    "phone_number_id",
    "waba_id",
    "recipient_prefix",
    "status",
    "kind",
    "field",
    "event",
    "template_name",
    "template_id",
    "display_phone_number",
    "entity_type",
    "entity_id",
)
"""What a route or a silence can match on; a list of values means any of them. `field` to
`entity_id` are for health events (docs/alerts.md, "Health events")."""

GROUP_FIELDS = (
    "api",
    "code",
    "category",
    "severity",
    "phone_number_id",
    "waba_id",
    "display_phone_number",
    "status",
    "kind",
    "recipient_id",
    "field",
    "event",
    "aspect",
    "entity_key",
)
"""Event fields a route may group alerts by (category and severity come from the catalog)."""

DEFAULT_GROUP_BY = ("phone_number_id", "code")
DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 5 * 60.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0
DEFAULT_ATTEMPTS = 5
DEFAULT_BASE_DELAY = 30.0
DEFAULT_MAX_DELAY = 3600.0

ROUTE_KEYS = {
    "name",
    "matchers",
    "action",
    "continue",
    "receivers",
    "group_by",
    "group_wait",
    "group_interval",
    "repeat_interval",
    "retry",
}
DEFAULT_KEYS = ROUTE_KEYS - {"name", "matchers", "action", "continue"}
RETRY_KEYS = {"attempts", "base_delay", "max_delay", "jitter"}
SILENCE_KEYS = {"matchers", "until", "comment", "created_by"}
TOP_KEYS = {"defaults", "routes", "silences", "receivers"}

Matchers = tuple[tuple[str, tuple[Any, ...]], ...]


class RulesError(ValueError):
    """A rules file is not valid; `problems` lists each one with the path of its key.

    `unreadable` when the file could not be read or is not YAML at all."""

    def __init__(self, source: str, problems: list[str], unreadable: bool = False) -> None:
        self.source = source
        self.problems = problems
        self.unreadable = unreadable
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True)
class RetrySchedule:
    """How often and how far apart to resend: exponential from `base_delay`, capped, jittered."""

    attempts: int = DEFAULT_ATTEMPTS
    base_delay: float = DEFAULT_BASE_DELAY
    max_delay: float = DEFAULT_MAX_DELAY
    jitter: str = "full"

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "base_delay": self.base_delay,
            "max_delay": self.max_delay,
            "jitter": self.jitter,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetrySchedule:
        return cls(**{key: data[key] for key in RETRY_KEYS if key in data})


@dataclass(frozen=True)
class Route:
    """One route: what it matches, and what happens to the events it takes."""

    name: str
    action: str
    matchers: Matchers = ()
    receivers: tuple[str, ...] = ()
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    group_wait: float = DEFAULT_GROUP_WAIT
    group_interval: float = DEFAULT_GROUP_INTERVAL
    repeat_interval: float = DEFAULT_REPEAT_INTERVAL
    retry: RetrySchedule | None = None
    continue_: bool = False

    @property
    def matcher_dict(self) -> dict[str, list[Any]]:
        """The matchers as a JSON-ready dict of value lists."""
        return {key: list(values) for key, values in self.matchers}

    def to_dict(self) -> dict[str, Any]:
        """The route as JSON-ready data (RQ job arguments are JSON)."""
        return {
            "name": self.name,
            "action": self.action,
            "matchers": self.matcher_dict,
            "receivers": list(self.receivers),
            "group_by": list(self.group_by),
            "group_wait": self.group_wait,
            "group_interval": self.group_interval,
            "repeat_interval": self.repeat_interval,
            "retry": None if self.retry is None else self.retry.to_dict(),
            "continue": self.continue_,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Route:
        """The inverse of `to_dict`."""
        return cls(
            name=data["name"],
            action=data["action"],
            matchers=tuple((key, tuple(values)) for key, values in data["matchers"].items()),
            receivers=tuple(data["receivers"]),
            group_by=tuple(data["group_by"]),
            group_wait=float(data["group_wait"]),
            group_interval=float(data["group_interval"]),
            repeat_interval=float(data["repeat_interval"]),
            retry=None if data.get("retry") is None else RetrySchedule.from_dict(data["retry"]),
            continue_=bool(data.get("continue", False)),
        )


@dataclass(frozen=True)
class Rules:
    """The routes of a file (in order), the built-in fallback routes, silences and receivers.

    `fallback` takes the events no route of the file matched. `alert_route` is where retry
    routes send events when resending is off or impossible (no message to resend).
    """

    routes: tuple[Route, ...]
    silences: tuple[dict, ...] = ()
    receivers: tuple[dict, ...] = ()
    fallback: tuple[Route, ...] = ()
    alert_route: Route = field(default_factory=lambda: Route("default", "alert"))
    resend_enabled: bool = False
    source: str = "built-in"

    def all_routes(self) -> tuple[Route, ...]:
        return self.routes + self.fallback


def route_defaults(settings: Settings) -> dict[str, Any]:
    """Route defaults from the settings (group timings, retry schedule)."""
    return {
        "receivers": (),
        "group_by": DEFAULT_GROUP_BY,
        "group_wait": settings.group_wait,
        "group_interval": settings.group_interval,
        "repeat_interval": settings.repeat_interval,
        "retry": RetrySchedule(
            attempts=settings.retry_attempts,
            base_delay=settings.retry_base_delay,
            max_delay=settings.retry_max_delay,
        ),
    }


def builtin_routes(defaults: Mapping[str, Any], resend_enabled: bool) -> tuple[Route, ...]:
    """Resend what the catalog says a resend can fix (if resending is on); alert the rest."""
    alert = _make_route("default", "alert", (), False, defaults)
    if not resend_enabled:
        return (alert,)
    transient = (("retry", ("immediate", "after_delay")),)
    return (_make_route("retry-transient", "retry", transient, False, defaults), alert)


def _make_route(
    name: str, action: str, matchers: Matchers, continue_: bool, settings: Mapping[str, Any]
) -> Route:
    return Route(
        name=name,
        action=action,
        matchers=matchers,
        receivers=tuple(settings["receivers"]) if action == "alert" else (),
        group_by=tuple(settings["group_by"]),
        group_wait=settings["group_wait"],
        group_interval=settings["group_interval"],
        repeat_interval=settings["repeat_interval"],
        retry=settings["retry"] if action == "retry" else None,
        continue_=continue_,
    )


def load_rules(path: str | Path | None = None, settings: Settings | None = None) -> Rules:
    """The rules of `path` (else of `WASTATUS_RULES`, else built-in); raises RulesError."""
    settings = settings or current()
    path = path or settings.rules_path
    resend_enabled = bool(settings.retry_url)
    defaults = route_defaults(settings)
    if path is None:
        fallback = builtin_routes(defaults, resend_enabled)
        return Rules((), (), (), fallback, fallback[-1], resend_enabled, "built-in")
    source = str(path)
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise RulesError(source, [f"cannot read: {error.strerror or error}"], True) from None
    except yaml.YAMLError as error:
        raise RulesError(source, [f"not valid YAML: {error}"], True) from None
    return parse_rules(document, source, defaults, resend_enabled)


def parse_rules(
    document: Any, source: str, defaults: Mapping[str, Any], resend_enabled: bool
) -> Rules:
    """Validate a parsed rules document; every problem is reported, not just the first."""
    problems: list[str] = []
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise RulesError(source, ["the file must be a mapping with a `routes` list"])
    _unknown(document, TOP_KEYS, "", problems)
    settings = dict(defaults)
    settings.update(_settings(document.get("defaults") or {}, "defaults", defaults, problems))
    routes = []
    raw_routes = document.get("routes") or []
    if not isinstance(raw_routes, list):
        problems.append("routes: must be a list")
        raw_routes = []
    names: set[str] = set()
    for index, raw in enumerate(raw_routes):
        found = _route(raw, f"routes[{index}]", settings, problems)
        if found is None:
            continue
        if found.name in names:
            problems.append(f"routes[{index}].name: {found.name!r} is used twice")
        names.add(found.name)
        routes.append(found)
    silences = _silences(document.get("silences") or [], problems)
    receivers = _receivers(document.get("receivers") or [], problems)
    if problems:
        raise RulesError(source, problems)
    fallback = builtin_routes(settings, resend_enabled)
    return Rules(tuple(routes), silences, receivers, fallback, fallback[-1], resend_enabled, source)


def _unknown(data: Mapping, allowed: set[str], path: str, problems: list[str]) -> None:
    for key in data:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            problems.append(f"{where}: unknown key (expected one of {', '.join(sorted(allowed))})")


def _settings(
    raw: Any, path: str, inherited: Mapping[str, Any], problems: list[str]
) -> dict[str, Any]:
    """The alert/retry settings present in `raw`, validated (absent ones are not returned)."""
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: must be a mapping")
        return {}
    if path == "defaults":
        _unknown(raw, DEFAULT_KEYS, path, problems)
    found = _durations(raw, ("group_wait", "group_interval", "repeat_interval"), path, problems)
    if "receivers" in raw:
        found["receivers"] = _names(raw["receivers"], f"{path}.receivers", problems)
    if "group_by" in raw:
        group_by = _names(raw["group_by"], f"{path}.group_by", problems)
        for name in group_by:
            if name not in GROUP_FIELDS:
                problems.append(
                    f"{path}.group_by: {name!r} is not one of {', '.join(GROUP_FIELDS)}"
                )
        found["group_by"] = group_by
    if "retry" in raw:
        found["retry"] = _schedule(raw["retry"], f"{path}.retry", inherited["retry"], problems)
    return found


# The setting whose range a rules file's duration key shares.
_SETTING_OF = {
    "group_wait": "group_wait",
    "group_interval": "group_interval",
    "repeat_interval": "repeat_interval",
    "base_delay": "retry_base_delay",
    "max_delay": "retry_max_delay",
}


def _durations(
    raw: Mapping, keys: tuple[str, ...], path: str, problems: list[str]
) -> dict[str, Any]:
    """Those of `keys` present in `raw`, parsed as durations in the range of the setting of
    the same meaning (a repeat_interval of 0 would notify in a loop); bad ones become problems."""
    found: dict[str, Any] = {}
    for key in keys:
        if key not in raw:
            continue
        try:
            seconds = parse_duration(raw[key])
        except ValueError as error:
            problems.append(f"{path}.{key}: {error}")
            continue
        low, high = bounds(_SETTING_OF[key])
        if not low <= seconds <= high:
            problems.append(f"{path}.{key}: {raw[key]!r} is out of range; use"
                            f" {format_duration(low)} to {format_duration(high)}")  # fmt: skip
            continue
        found[key] = seconds
    return found


def _names(raw: Any, path: str, problems: list[str]) -> tuple[str, ...]:
    values = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(value, str) and value for value in values):
        problems.append(f"{path}: must be a name or a list of names")
        return ()
    return tuple(values)


def _schedule(raw: Any, path: str, inherited: RetrySchedule, problems: list[str]) -> RetrySchedule:
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: must be a mapping of {', '.join(sorted(RETRY_KEYS))}")
        return inherited
    _unknown(raw, RETRY_KEYS, path, problems)
    values: dict[str, Any] = {}
    if "attempts" in raw:
        attempts = raw["attempts"]
        low, high = bounds("retry_attempts")  # as WASTATUS_RETRY_ATTEMPTS
        if (
            isinstance(attempts, bool)
            or not isinstance(attempts, int)
            or not low <= attempts <= high
        ):
            problems.append(f"{path}.attempts: must be a whole number from {low} to {high}")
        else:
            values["attempts"] = attempts
    values.update(_durations(raw, ("base_delay", "max_delay"), path, problems))
    if "jitter" in raw:
        if raw["jitter"] not in JITTERS:
            problems.append(f"{path}.jitter: must be one of {', '.join(JITTERS)}")
        else:
            values["jitter"] = raw["jitter"]
    schedule = replace(inherited, **values)
    if schedule.max_delay < schedule.base_delay:
        problems.append(f"{path}.max_delay: must not be less than base_delay")
    return schedule


def _route(raw: Any, path: str, settings: Mapping[str, Any], problems: list[str]) -> Route | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: must be a mapping")
        return None
    before = len(problems)
    _unknown(raw, ROUTE_KEYS, path, problems)
    action = raw.get("action")
    if action not in ACTIONS:
        problems.append(f"{path}.action: must be one of {', '.join(ACTIONS)} (got {action!r})")
        action = "alert"
    name = raw.get("name", f"route-{path[7:-1]}")
    if not isinstance(name, str) or not name:
        problems.append(f"{path}.name: must be a non-empty string")
    matchers = parse_matchers(raw.get("matchers") or {}, f"{path}.matchers", problems)
    continue_ = raw.get("continue", False)
    if not isinstance(continue_, bool):
        problems.append(f"{path}.continue: must be true or false")
    own = _settings(raw, path, settings, problems)
    if action != "alert":
        for key in ("receivers", "group_by", "group_wait", "group_interval", "repeat_interval"):
            if key in raw:
                problems.append(f"{path}.{key}: only an alert route has {key}")
    if action != "retry" and "retry" in raw:
        problems.append(f"{path}.retry: only a retry route has a retry schedule")
    if len(problems) > before:
        return None
    return _make_route(name, action, matchers, continue_, {**settings, **own})


def parse_matchers(raw: Any, path: str, problems: list[str]) -> Matchers:
    """Validate and normalize matchers: each value becomes a tuple of canonical values."""
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: must be a mapping of {', '.join(MATCHER_KEYS)}")
        return ()
    found = []
    for key, value in raw.items():
        if key not in MATCHER_KEYS:
            problems.append(f"{path}.{key}: unknown matcher (expected one of "
                            f"{', '.join(MATCHER_KEYS)})")  # fmt: skip
            continue
        values = value if isinstance(value, list) else [value]
        if not values:
            problems.append(f"{path}.{key}: an empty list matches nothing")
            continue
        normalized = []
        for item in values:
            try:
                normalized.append(_matcher_value(key, item))
            except ValueError as error:
                problems.append(f"{path}.{key}: {error}")
        found.append((key, tuple(normalized)))
    return tuple(found)


def _matcher_value(key: str, value: Any) -> Any:
    vocabularies = {
        "category": catalog.CATEGORIES,
        "severity": catalog.SEVERITIES,
        "retry": catalog.RETRY_POLICIES,
        "kind": ("status", "error", "message", "health"),
    }
    if key == "code":
        if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
            return None
        code = catalog.parse_code(value)
        if code is None:
            raise ValueError(f"{value!r} is not an error code")
        return code
    if key == "api":
        try:
            return catalog.normalize_api(str(value))
        except ValueError:
            raise ValueError(f"{value!r} is not one of {', '.join(catalog.APIS)}") from None
    if key in vocabularies:
        if value not in vocabularies[key]:
            raise ValueError(f"{value!r} is not one of {', '.join(vocabularies[key])}")
        return value
    if isinstance(value, (bool, float)) or value is None or isinstance(value, (list, dict)):
        raise ValueError(f"{value!r} must be a string")
    text = str(value).strip()
    if key == "recipient_prefix":
        text = text.removeprefix("+")
        if not text.isdigit():
            raise ValueError(f"{value!r} must be digits, like 81")
    return text


def _silences(raw: Any, problems: list[str]) -> tuple[dict, ...]:
    if not isinstance(raw, list):
        problems.append("silences: must be a list")
        return ()
    found = []
    for index, item in enumerate(raw):
        path = f"silences[{index}]"
        if not isinstance(item, Mapping):
            problems.append(f"{path}: must be a mapping")
            continue
        _unknown(item, SILENCE_KEYS, path, problems)
        if not item.get("matchers"):
            problems.append(f"{path}.matchers: a silence needs at least one matcher")
        matchers = parse_matchers(item.get("matchers") or {}, f"{path}.matchers", problems)
        until = item.get("until")
        if isinstance(until, dt.date) and not isinstance(until, dt.datetime):
            until = dt.datetime.combine(until, dt.time(), dt.UTC)
        if isinstance(until, str):
            try:
                until = dt.datetime.fromisoformat(until)
            except ValueError:
                problems.append(f"{path}.until: {until!r} is not an ISO-8601 time")
                continue
        if until is not None and not isinstance(until, dt.datetime):
            problems.append(f"{path}.until: must be an ISO-8601 time or null")
            continue
        if until is not None and until.tzinfo is None:
            until = until.replace(tzinfo=dt.UTC)
        found.append(
            {
                "matchers": {key: list(values) for key, values in matchers},
                "until": None if until is None else until.isoformat(),
                "comment": str(item.get("comment") or ""),
                "created_by": str(item.get("created_by") or "rules file"),
            }
        )
    return tuple(found)


def _receivers(raw: Any, problems: list[str]) -> tuple[dict, ...]:
    """Named receivers are checked by the alerts side; here only their outline."""
    if not isinstance(raw, list):
        problems.append("receivers: must be a list")
        return ()
    found = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            problems.append(f"receivers[{index}]: must be a mapping with a `name`")
            continue
        found.append(dict(item))
    return tuple(found)


_cache: dict[tuple, Rules] = {}


def current_rules(settings: Settings | None = None) -> Rules:
    """`load_rules()` for jobs, cached until the file or the settings change."""
    settings = settings or current()
    path = settings.rules_path
    try:
        mtime = os.stat(path).st_mtime_ns if path else None
    except OSError:
        mtime = None
    key = (settings, mtime)
    rules = _cache.get(key)
    if rules is None:
        rules = load_rules(None, settings)
        _cache.clear()
        _cache[key] = rules
    return rules
