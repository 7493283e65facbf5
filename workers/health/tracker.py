"""Health events in the workers: explained, remembered, routed, alerted and resolved.

The drain job hands its batch's health events (kind "health", see `webhook.health_payload`) to
`process`. Each is explained from the catalog's health entries, compared with the last known
state of its entity (a template, a phone number, an account) so its alert says what changed,
and then, by the entry's effect:

- a **problem** is routed by the rules file like a failure and, on an alert route, joins an
  alert group of its own (by default one per field, aspect and entity), silenced the same way;
  it is remembered as an open problem;
- a **recovery** (REINSTATED, GREEN, UNFLAGGED, REINSTATE, a restriction's end passing) closes
  the open problem's group with a `resolved` notification that carries it;
- a **benign** event is counted and only updates the state.

State is bounded: at most `MAX_ENTITIES` entities (the least recently changed go first, but
not one with an event whose outcome is pending), each kept `STATE_SECONDS` after its last
change. A taken event costs nothing here once its outcome is in the ledger (see `PENDING`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis
import rq
from prometheus_client import Counter

import catalog
import catalog.health
from workers.alerting import groups
from workers.jobs import FAILURE_TTL, RERUN_INTERVALS, job_connection
from workers.outcomes import ledger
from workers.queues import ALERTS, get_queue
from workers.routing.router import route
from workers.routing.rules import DEFAULT_GROUP_BY, Route, Rules
from workers.settings import Settings, current

STATE_PREFIX = "wastatus:health:state:"
"""`STATE_PREFIX + entity_key`: hash aspect → JSON value of an entity's last known state, plus
`entity` (the entity as JSON), `waba_id` and `updated_at`."""

ENTITIES = "wastatus:health:entities"
"""Sorted set of the entity keys with a state, scored by their last change."""

OPEN = "wastatus:health:open"
"""Hash problem key (`field|aspect|entity_key`) → JSON of the open problem: its event, severity,
since, Meta's timestamp (`at`), end (restrictions) and the alert groups it went to. Not
WATCHed (events of other entities would retry each other): every write of a problem of an
entity also writes that entity's state hash, which is."""

PENDING = "pending"
"""State field: JSON list of the ids of the entity's taken health events whose outcome is still
to come (a problem or recovery whose notification is not delivered yet). A health event was
taken before iff the ledger has its outcome (written in the transaction that takes it, or once
its notification is delivered) or its id is here; so a rerun of its batch skips it, and the
only mark it leaves is its ledger entry."""

PENDING_MAX = 1000
"""Pending ids kept per entity, newest last: the outcome of the oldest of more than this many
undelivered alerts of one entity is no longer waited for (a rerun of its batch would take it
again)."""

WATCH_TRIES = 200
"""Times an event's transaction is tried again when another worker changed what it read."""

COUNTS = "wastatus:health:counts"
"""Hash `field/event` → health events taken (unknown values as `field/other`)."""

MAX_ENTITIES = 10_000
"""Entities whose state is kept; the least recently changed beyond this are forgotten."""

STATE_SECONDS = 90 * 86400
"""How long an entity's state is kept after its last change."""

HEALTH_GROUP_BY = ("field", "aspect", "entity_key")
"""How health events are grouped when their route keeps the failures' default grouping."""

ASPECTS = (
    "flag", "ban", "restrictions", "violation", "quality", "status", "category", "security",
    "decision", "alert", "tier", "max_daily_conversations_per_business",
)  # fmt: skip
"""The part of an entity's state an event is about: the first of these its `current` names.
A recovery resolves the open problem of the same field, aspect and entity."""

EXPIRE_JOB = "workers.health.tracker.expire_restriction"

JOINED_CODES = {132015: "template", 132016: "template", 131031: "waba", 368: "waba"}
"""Failure codes whose alert carries the matching health state (paused or disabled templates,
an account's ban and restrictions)."""

HEALTH_EVENTS = Counter(
    "wastatus_health_events",
    "Health events taken by the drain job, by field, event (other when unknown) and effect.",
    ["field", "event", "effect"],
)
RESOLVED = Counter(
    "wastatus_health_resolved",
    "Open health problems resolved by a recovery, by field.",
    ["field"],
)


def entity_key(event: Mapping) -> str:
    entity = event.get("entity") or {}
    return f"{entity.get('type') or 'waba'}:{entity.get('id') or event.get('waba_id') or '?'}"


def aspect_of(current: Mapping | None) -> str:
    """The aspect an event is about (see ASPECTS); "event" when its state names none."""
    for name in ASPECTS:
        if name in (current or {}):
            return name
    return "event"


def problem_key(event: Mapping) -> str:
    return f"{event['field']}|{event['aspect']}|{event['entity_key']}"


def enrich(event: Mapping) -> dict:
    """A new dict: `event` with its health entry under `catalog`, its aspect and entity key."""
    entry = catalog.health_lookup(event.get("field") or "", event.get("event"))
    explained = entry.to_dict()
    explained["retry"] = None
    return {
        **event,
        "code": None,
        "catalog": explained,
        "aspect": aspect_of(event.get("current")),
        "entity_key": entity_key(event),
        "ends": restriction_end(event.get("current")),
    }


def restriction_end(current: Mapping | None) -> float | None:
    """The latest end of an account's restrictions (Unix seconds), or None."""
    ends = [
        item["expiration"]
        for item in (current or {}).get("restrictions") or []
        if isinstance(item, Mapping) and isinstance(item.get("expiration"), (int, float))
    ]
    return max(ends) if ends else None


def _read_state(connection: redis.Redis, key: str) -> dict[str, Any]:
    raw = connection.hgetall(STATE_PREFIX + key)
    state = {}
    for name, value in raw.items():
        try:
            state[name.decode()] = json.loads(value)
        except ValueError:
            continue
    return state


def _write_state(pipe: redis.client.Pipeline, event: Mapping, now: float) -> None:
    """Queue the write of `event`'s state (and when its aspect last changed) into `pipe`."""
    key = STATE_PREFIX + event["entity_key"]
    current = dict(event.get("current") or {})
    if event["field"] == "phone_number_quality_update" and event["event"] == "UNFLAGGED":
        current["flag"] = None  # no flag any more; Meta does not say the quality it came back to
    values = {name: json.dumps(value) for name, value in current.items()}
    values |= {
        "entity": json.dumps(event.get("entity") or {}),
        "waba_id": json.dumps(event.get("waba_id")),
        "updated_at": json.dumps(now),
        f"event:{event['field']}": json.dumps(event.get("event")),
        _at_field(event): json.dumps(event.get("timestamp") or 0),
    }
    pipe.hset(key, mapping=values)
    pipe.expire(key, STATE_SECONDS)
    pipe.zadd(ENTITIES, {event["entity_key"]: now})


def _at_field(event: Mapping) -> str:
    """The state field holding Meta's timestamp of the last event taken for this aspect."""
    return f"at:{event['field']}|{event['aspect']}"


def _trim(connection: redis.Redis) -> None:
    """Forget the least recently changed entities beyond MAX_ENTITIES, but none with a pending
    event: its state is how a rerun knows that event was taken."""
    excess = connection.zcard(ENTITIES) - MAX_ENTITIES
    if excess > 0:
        oldest = [raw.decode() for raw in connection.zrange(ENTITIES, 0, excess - 1)
                  if not _pending(connection, STATE_PREFIX + raw.decode())]  # fmt: skip
    if excess > 0 and oldest:
        with connection.pipeline(transaction=True) as pipe:
            pipe.delete(*(STATE_PREFIX + name for name in oldest))
            pipe.zrem(ENTITIES, *oldest)
            pipe.execute()


def _label(event: Mapping) -> str:
    return event["event"] if event["catalog"].get("known") else "other"


def health_route(chosen: Route) -> Route:
    """`chosen`, grouping by HEALTH_GROUP_BY when it keeps the failures' default grouping."""
    if tuple(chosen.group_by) == DEFAULT_GROUP_BY:
        return dataclasses.replace(chosen, group_by=HEALTH_GROUP_BY)
    return chosen


def process(
    connection: redis.Redis,
    events: Iterable[dict],
    rules: Rules,
    settings: Settings,
    now: float | None = None,
) -> list[str]:
    """Handle a batch's health events in the order Meta sent them; returns the ids this call
    recorded as dropped (benign events, recoveries with nothing open, problems a rule dropped,
    stale events). Events taken before (a rerun of a batch whose job died) are skipped."""
    now = time.time() if now is None else now
    dropped: list[str] = []
    ordered = sorted(events, key=lambda e: (e.get("timestamp") or 0, e.get("received_at") or 0))
    for raw in ordered:
        if take(connection, raw, rules, settings, now) in ("dropped", "stale"):
            dropped.append(raw["event_id"])
    _trim(connection)
    return dropped


def take(
    connection: redis.Redis,
    raw: Mapping,
    rules: Rules | None,
    settings: Settings,
    now: float,
    aspect: str | None = None,
) -> str:
    """Take one health event, once: its state, count, effect, ledger outcome when it has no
    notification (else its id among the entity's pending ones) are one MULTI, WATCHing the
    entity's state (every take and every removal of one of its open problems writes it) and a
    recovery's groups. Another worker writing any of them first makes it read and decide again.

    Taken before: the ledger has its outcome, or its id is pending (see `PENDING`).

    Returns "done" (taken before), "stale" (older than the last event of its aspect),
    "submitted" (a problem, to its alert groups), "resolved", or "dropped"."""
    event_id = raw["event_id"]
    state = STATE_PREFIX + entity_key(raw)
    for _ in range(WATCH_TRIES):
        with connection.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(state)
                pending = _pending(pipe, state)
                # the ledger is read, not WATCHed: it only gains outcomes, and another
                # worker's take of this event writes the state
                ended = ledger.outcomes_of(connection, [event_id, *pending], now)
                if event_id in pending or ended[event_id] is not None:
                    return "done"
                plan = _decide(pipe, raw, rules, aspect)
                pipe.multi()
                finish = _stage(connection, pipe, plan, settings, now)
                still = [name for name in pending if ended[name] is None]
                if plan["outcome"] in ("submitted", "resolved"):
                    still.append(event_id)
                pipe.hset(state, PENDING, json.dumps(still[-PENDING_MAX:]))
                pipe.expire(state, STATE_SECONDS)
                replies = pipe.execute()
            except redis.WatchError:
                time.sleep(random.uniform(0.001, 0.01))
                continue
        outcome = finish(replies)
        event = plan["event"]
        HEALTH_EVENTS.labels(event["field"], _label(event), event["catalog"]["effect"]).inc()
        if outcome == "resolved":
            RESOLVED.labels(event.get("field") or "other").inc()
        return outcome
    raise RuntimeError(f"health event {event_id}: its entity changed {WATCH_TRIES} "
                       "times while it was taken")  # fmt: skip


def _pending(connection: redis.Redis, state: str) -> list[str]:
    """The entity's pending event ids (see `PENDING`)."""
    raw = connection.hget(state, PENDING)
    try:
        found = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [name for name in found if isinstance(name, str)] if isinstance(found, list) else []


def _decide(
    pipe: redis.client.Pipeline, raw: Mapping, rules: Rules | None, aspect: str | None
) -> dict:
    """What taking `raw` will do, from what `pipe` reads (and WATCHes)."""
    event = enrich(raw)
    if aspect:
        event["aspect"] = aspect
    known = _read_state(pipe, event["entity_key"])
    if event["field"] == "business_capability_update" and _lowered(known, event):
        event = enrich({**raw, "event": "LIMIT_DECREASED"})
    stated = {name: known[name] for name in event.get("current") or {} if name in known}
    event["previous"] = stated | (event.get("previous") or {})
    plan: dict[str, Any] = {"event": event, "effect": event["catalog"]["effect"]}
    last = known.get(_at_field(event))
    if isinstance(last, (int, float)) and (event.get("timestamp") or 0) < last:
        # Meta sent a later change of this aspect that a worker took first: this one is over
        plan["effect"] = "stale"
        return plan
    key = problem_key(event)
    before = pipe.hget(OPEN, key)
    problem = json.loads(before) if before else None
    plan["problem"] = problem
    if plan["effect"] == "problem":
        taken = route(event, rules) if rules is not None else []
        plan["routes"] = [health_route(chosen) for chosen in taken if chosen.action == "alert"]
    elif plan["effect"] == "recovery" and problem:
        hashes = [groups.group_hash(gid) for gid in problem.get("gids", [])]
        if hashes:
            pipe.watch(*hashes)
        notified = [pipe.hget(name, "notified_at") for name in hashes]
        alive = [gid for gid, name in zip(problem.get("gids", []), hashes, strict=True)
                 if pipe.exists(name)]  # fmt: skip
        plan["gids"] = alive
        if alive and not any(notified):
            # the problem's first notification was not sent yet: one notification says both
            at = event.get("timestamp") or 0
            seconds = max(0, int(at - (problem.get("at") or at)))
            plan["brief"] = {"problem": problem.get("event"), "seconds": seconds}
    return plan


def _stage(
    connection: redis.Redis,
    pipe: redis.client.Pipeline,
    plan: dict,
    settings: Settings,
    now: float,
) -> Callable[[list], str]:
    """Queue `plan`'s writes into the MULTI `pipe`; returns what finishes it after EXEC."""
    event = plan["event"]
    effect = plan["effect"]
    pipe.hincrby(COUNTS, f"{event['field']}/{_label(event)}", 1)
    if effect != "stale":
        _write_state(pipe, event, now)
    key = problem_key(event)
    finishers = []
    outcome = "dropped"
    if effect == "problem" and plan["routes"]:
        gids = []
        for chosen in plan["routes"]:
            finishers.append(groups.stage_submit(pipe, connection, [event], chosen, settings))
            gids.append(groups.group_id(groups.group_label(event, chosen)))
        known = plan["problem"] or {}
        record = {
            "field": event["field"],
            "aspect": event["aspect"],
            "entity_key": event["entity_key"],
            "entity": event.get("entity"),
            "waba_id": event.get("waba_id"),
            "event": event["event"],
            "severity": event["catalog"]["severity"],
            "title": event["catalog"]["title"],
            "since": known.get("since", now),
            "at": known.get("at", event.get("timestamp")),
            "ends": event["ends"],
            "gids": sorted(set(known.get("gids", [])) | set(gids)),
        }
        pipe.hset(OPEN, key, json.dumps(record))
        if event["ends"] is not None:
            _stage_expiry(connection, pipe, key, event["ends"])
        outcome = "submitted"
    elif effect == "recovery" and plan["problem"] is not None:
        if plan.get("brief"):
            event["brief"] = plan["brief"]
        for gid in plan.get("gids", []):
            finishers.append(groups.stage_close(pipe, connection, gid, event, now))
        pipe.hdel(OPEN, key)
        if plan.get("gids"):
            outcome = "resolved"
    if outcome == "dropped":  # no notification will record its end: record it now
        ledger.record(pipe, "dropped", [event["event_id"]], now)
    plan["outcome"] = outcome

    def finish(replies: list) -> str:
        for then in finishers:
            then(replies)
        return "stale" if effect == "stale" else outcome

    return finish


def _limit(value: Any) -> float | None:
    """A limit as a number: 2000, "2000", "TIER_10K"; "TIER_UNLIMITED" and -1 are infinite."""
    text = str(value).upper().removeprefix("TIER_")
    if text in ("UNLIMITED", "-1"):
        return float("inf")
    scale = {"K": 1e3, "M": 1e6}.get(text[-1:], 1.0)
    try:
        return float(text[:-1] if scale != 1.0 else text) * scale
    except ValueError:
        return None


def _lowered(known: Mapping, event: Mapping) -> bool:
    """True when a capability update lowers a limit wastatus knew."""
    for key, now in (event.get("current") or {}).items():
        before, after = _limit(known.get(key)), _limit(now)
        if before is not None and after is not None and after < before:
            return True
    return False


def _stage_expiry(
    connection: redis.Redis, pipe: redis.client.Pipeline, key: str, end: float
) -> None:
    """Queue into the MULTI `pipe` the job that checks the restriction again once it ends (a
    whole second later: RQ's scheduler), so the problem and its expiry are written together."""
    queue = get_queue(connection, ALERTS)
    at = dt.datetime.fromtimestamp(int(end) + 1, dt.UTC)  # past: at the scheduler's next tick
    queue.enqueue_at(at, EXPIRE_JOB, key, end, result_ttl=0, failure_ttl=FAILURE_TTL,
                     retry=rq.Retry(max=3, interval=RERUN_INTERVALS), pipeline=pipe)  # fmt: skip


def expire_restriction(key: str, end: float) -> str:
    """RQ job: an account restriction's end passed; resolve its open problem if still open.
    Its recovery has an id made from the problem and the end, so a rerun takes it once."""
    connection = job_connection()
    raw = connection.hget(OPEN, key)
    if raw is None:
        return "closed"
    problem = json.loads(raw)
    now = time.time()
    if problem.get("ends") is None or problem["ends"] > end or problem["ends"] > now:
        return "extended"  # a later restriction moved the end: its own job comes then
    recovery = {
        "kind": "health",
        "api": "cloud",
        "field": problem["field"],
        "event": "RESTRICTION_EXPIRED",
        "waba_id": problem.get("waba_id"),
        "entity": problem.get("entity") or {},
        "previous": {"restrictions": "open"},
        "current": {"restrictions": []},
        "details": {"ended": end},
        "errors": [],
        "timestamp": int(end),
        "received_at": now,
    }
    recovery["event_id"] = hashlib.sha256(f"expired\x1f{key}\x1f{end}".encode()).hexdigest()[:32]
    outcome = take(connection, recovery, None, current(), now, aspect=problem["aspect"])
    return {"dropped": "nothing open"}.get(outcome, outcome)


_PRUNE = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
local pending = redis.call('HGET', KEYS[2], 'pending')
if pending then redis.call('HSET', KEYS[2], 'pending', pending) end
return 1
"""
"""Forget an open problem unless a take changed it meanwhile, and touch its entity's state so
a take that read it (WATCHing the state) reads again."""


def open_problems(connection: redis.Redis, prune: bool = True) -> list[dict]:
    """The open health problems, most severe first. Those whose alert groups all closed (the
    resolve time passed, or they were silenced) are not open any more: left out, and with
    `prune` forgotten."""
    found = []
    for key, raw in connection.hgetall(OPEN).items():
        try:
            problem = json.loads(raw)
            gids = list(problem.get("gids") or [])
        except (ValueError, TypeError, AttributeError):
            continue  # not written by this module: never let it break a scrape or a status
        if not {"severity", "field", "since"} <= problem.keys():
            continue

        alive = [gid for gid in gids if connection.exists(groups.group_hash(gid))]
        if gids and not alive:
            if prune:
                state = STATE_PREFIX + str(problem.get("entity_key"))
                connection.register_script(_PRUNE)(keys=[OPEN, state], args=[key, raw])
            continue
        problem["key"] = key.decode()
        found.append(problem)
    order = {name: index for index, name in enumerate(catalog.SEVERITIES)}
    found.sort(key=lambda item: (order.get(item["severity"], 9), -item["since"]))
    return found


def entities(connection: redis.Redis, limit: int = 1000) -> list[dict]:
    """The known templates, numbers and accounts with their state, latest change first."""
    keys = [raw.decode() for raw in connection.zrevrange(ENTITIES, 0, limit - 1)]
    found = []
    for key in keys:
        state = _read_state(connection, key)
        if not state:
            continue
        entity = state.pop("entity", {}) or {}
        updated = state.pop("updated_at", None)
        waba = state.pop("waba_id", None)
        state.pop(PENDING, None)
        events = {name.removeprefix("event:"): state.pop(name) for name in list(state)
                  if name.startswith("event:")}  # fmt: skip
        found.append({"key": key, "entity": entity, "waba_id": waba, "state": state,
                      "last_events": events, "updated_at": updated})  # fmt: skip
    return found


def open_counts(connection: redis.Redis) -> dict[tuple[str, str], int]:
    """Open problems by (field, severity), every pair present (0 when none), for /metrics."""
    counts = {(field, severity): 0 for field in catalog.health.FIELDS
              for severity in catalog.SEVERITIES}  # fmt: skip
    for problem in open_problems(connection, prune=False):
        pair = (problem["field"], problem["severity"])
        if pair in counts:
            counts[pair] += 1
    return counts


def summary(connection: redis.Redis) -> dict:
    """`wastatus health --json`: entities, open problems, and counts by field and severity."""
    problems = open_problems(connection)
    by = {}
    for problem in problems:
        name = f"{problem['field']}/{problem['severity']}"
        by[name] = by.get(name, 0) + 1
    counts = {key.decode(): int(value) for key, value in connection.hgetall(COUNTS).items()}
    return {
        "entities": entities(connection),
        "open_problems": problems,
        "open_by_field_severity": by,
        "events": counts,
    }


def joined_state(connection: redis.Redis, event: Mapping) -> dict | None:
    """The known health state a failure's code points at, or None (see JOINED_CODES)."""
    kind = JOINED_CODES.get(event.get("code"))  # type: ignore[arg-type]
    waba = event.get("waba_id")
    if kind is None or not waba:
        return None
    if kind == "waba":
        state = _read_state(connection, f"waba:{waba}")
        wanted = {key: state[key] for key in ("ban", "restrictions", "violation", "status")
                  if key in state}  # fmt: skip
        return {"waba": {"id": waba, **wanted}} if wanted else None
    trouble = {"PAUSED", "DISABLED", "FLAGGED", "DELETED", "PENDING_DELETION"}
    templates = []
    for problem in open_problems(connection):
        same = problem.get("waba_id") == waba and problem.get("event") in trouble
        if same and problem["field"] == "message_template_status_update":
            templates.append({**(problem.get("entity") or {}), "status": problem["event"]})
    return {"templates": templates[:10]} if templates else None


def join(connection: redis.Redis, events: list[dict]) -> None:
    """Attach the known health state to failures whose code points at one (in place)."""
    cache: dict[tuple, dict | None] = {}
    for event in events:
        if event.get("code") not in JOINED_CODES:
            continue
        key = (event.get("code"), event.get("waba_id"))
        if key not in cache:
            cache[key] = joined_state(connection, event)
        if cache[key]:
            event["health"] = cache[key]
