"""Silences: matchers with an expiry; matching events are counted, recorded, and not sent.

Silences come from two places: Redis (`wastatus silence add`, kept in the hash `SILENCES`)
and the rules file's `silences:` list (`Rules.silences`: dicts `{matchers, until, comment}`).
Matchers use the same keys and semantics as routes (`workers.routing.rules.MATCHER_KEYS`: api, code,
category, severity, retry, phone_number_id, waba_id, recipient_prefix, status, kind); a list
value means any of them. An expired silence stays
listed (with `--all`) for `WASTATUS_SILENCE_RETENTION` (a week) so people see what was
silenced, then goes, with its count.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import time
from collections.abc import Iterable, Mapping

import redis
from prometheus_client import Counter

from workers.routing import router, rules
from workers.settings import Settings, current

SILENCES = "wastatus:silences"
"""Hash: silence id → JSON {id, matchers, starts_at, ends_at, comment, created_by, created_at}."""

COUNTS = "wastatus:silences:counts"
"""Hash: silence id → events it silenced."""


EVENTS_SILENCED = Counter(
    "wastatus_alert_events_silenced",
    "Failure events a silence kept from being sent.",
    ["silence"],
)


class SilenceError(ValueError):
    """A silence that cannot be stored: unknown matcher key, no matcher, or an end in the past."""


def matches(event: Mapping, matchers: Mapping[str, object]) -> bool:
    """True when every matcher holds for the enriched `event` (the routes' own semantics)."""
    return router.matches(matchers, event)


def validate_matchers(matchers: Mapping[str, object]) -> dict:
    """The matchers normalized as routes normalize them, or SilenceError saying what is wrong."""
    if not matchers:
        raise SilenceError("a silence needs at least one matcher, e.g. code=131049")
    problems: list[str] = []
    parsed = rules.parse_matchers(dict(matchers), "matchers", problems)
    if problems:
        raise SilenceError("; ".join(problems))
    return {key: list(values) for key, values in parsed}


def _timestamp(value: object) -> float | None:
    """Seconds since the epoch from an ISO-8601 string, a datetime, a number, or None."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(), dt.UTC)
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def add(
    connection: redis.Redis,
    matchers: Mapping[str, object],
    ends_at: float,
    comment: str = "",
    created_by: str = "",
) -> dict:
    """Store a silence that holds from now until `ends_at` (unix seconds); returns it."""
    now = time.time()
    if ends_at <= now:
        raise SilenceError("the silence would already be over: give an end in the future")
    silence = {
        "id": secrets.token_hex(4),
        "matchers": validate_matchers(matchers),
        "starts_at": now,
        "ends_at": ends_at,
        "comment": comment,
        "created_by": created_by,
        "created_at": now,
        "source": "redis",
    }
    connection.hset(SILENCES, silence["id"], json.dumps(silence, ensure_ascii=False))
    return silence


def expire(connection: redis.Redis, silence_id: str) -> bool:
    """End the stored silence `silence_id` now; False when there is no such silence."""
    raw = connection.hget(SILENCES, silence_id)
    if raw is None:
        return False
    silence = json.loads(raw)
    silence["ends_at"] = min(silence["ends_at"], time.time())
    connection.hset(SILENCES, silence_id, json.dumps(silence, ensure_ascii=False))
    return True


def from_rules(rule_silences: Iterable[Mapping]) -> list[dict]:
    """The rules file's silences in the stored shape; the id is a hash of their content."""
    found = []
    for rule in rule_silences:
        matchers = dict(rule.get("matchers") or {})
        until = _timestamp(rule.get("until"))
        digest = hashlib.sha1(
            json.dumps([matchers, until], sort_keys=True, default=str).encode()
        ).hexdigest()[:8]
        found.append({
            "id": f"rules-{digest}",
            "matchers": matchers,
            "starts_at": None,
            "ends_at": until,
            "comment": rule.get("comment") or "",
            "created_by": "rules file",
            "created_at": None,
            "source": "rules",
        })  # fmt: skip
    return found


def _rules_silences(settings: Settings) -> list[dict]:
    """Silences declared in `WASTATUS_RULES` (the rules are cached until the file changes)."""
    if not settings.rules_path:
        return []
    return from_rules(rules.current_rules(settings).silences)


def _is_active(silence: Mapping, now: float) -> bool:
    ends = silence.get("ends_at")
    starts = silence.get("starts_at")
    return (ends is None or ends > now) and (starts is None or starts <= now)


def _kept(connection: redis.Redis, now: float, retention: float | None = None) -> list[dict]:
    """The silences in Redis, after removing those expired longer ago than the retention
    (and their counts: a count of a silence nobody can see would be kept forever)."""
    silences = [json.loads(value) for value in connection.hgetall(SILENCES).values()]
    if all(s["ends_at"] >= now for s in silences):
        return silences  # nothing expired: the usual case, on every batch an alert route takes
    if retention is None:
        retention = current().silence_retention
    old = [s["id"] for s in silences if s["ends_at"] + retention < now]
    if old:
        with connection.pipeline() as pipe:
            pipe.hdel(SILENCES, *old)
            pipe.hdel(COUNTS, *old)
            pipe.execute()
    return [s for s in silences if s["id"] not in old]


def stored(connection: redis.Redis, now: float | None = None) -> list[dict]:
    """Every silence kept in Redis, expired ones included, with its count; oldest first."""
    now = time.time() if now is None else now
    silences = sorted(_kept(connection, now), key=lambda silence: silence["created_at"])
    counts = connection.hgetall(COUNTS)
    for silence in silences:
        silence["silenced"] = int(counts.get(silence["id"].encode(), 0))
        silence["active"] = _is_active(silence, now)
    return silences


def active(
    connection: redis.Redis, settings: Settings | None = None, now: float | None = None
) -> list[dict]:
    """The silences in force now, from Redis and the rules file, each with its count."""
    now = time.time() if now is None else now
    settings = settings or current()
    kept = _kept(connection, now, settings.silence_retention)
    silences = sorted((s for s in kept if _is_active(s, now)),
                      key=lambda silence: silence["created_at"])  # fmt: skip
    silences += [s for s in _rules_silences(settings) if _is_active(s, now)]
    counts = connection.hgetall(COUNTS)
    for silence in silences:
        silence["silenced"] = int(counts.get(silence["id"].encode(), 0))
    return silences


def split(
    connection: redis.Redis, events: list[dict], settings: Settings | None = None
) -> tuple[list[dict], dict[str, list[dict]]]:
    """Separate `events` into those to send and those silenced (by silence id)."""
    silences = active(connection, settings)
    if not silences:
        return events, {}
    keep: list[dict] = []
    silenced: dict[str, list[dict]] = {}
    for event in events:
        for silence in silences:
            if matches(event, silence["matchers"]):
                silenced.setdefault(silence["id"], []).append(event)
                break
        else:
            keep.append(event)
    return keep, silenced


def count_silenced(pipe: redis.client.Pipeline, silenced: Mapping[str, list[dict]]) -> None:
    """Add the silenced events to each silence's count (on `pipe`) and to the metric."""
    for silence_id, events in silenced.items():
        pipe.hincrby(COUNTS, silence_id, len(events))
        EVENTS_SILENCED.labels(silence_id).inc(len(events))
