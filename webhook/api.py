"""The console's JSON API under `/api/v1`: what the pages show, for scripts (docs/api.md).

A caller is a logged-in console user (session cookie; a state change also sends the CSRF token
as `X-CSRFToken`) or a script with `Authorization: Bearer $WASTATUS_CONSOLE_TOKEN`. Every state
change is logged with who made it. Errors are the web app's (`webhook/errors.py`).
"""

from __future__ import annotations

import time

import redis
from flask import Blueprint, current_app, jsonify, request

from webhook import quarantine
from webhook.console import auth, data
from webhook.errors import error_response
from workers import bounds
from workers.alerting import silences
from workers.outcomes import deadletters
from workers.replay import replay as replay_dead_letter
from workers.settings import Settings, parse_duration

bp = Blueprint("api", __name__, url_prefix="/api/v1")

SILENCE_MAX_SECONDS = 365 * 86400.0


def _redis() -> redis.Redis:
    return current_app.extensions["wastatus"].redis()


def _settings() -> Settings:
    return current_app.extensions["wastatus"].settings


def _body() -> dict:
    body = request.get_json(silent=True)
    # JSON may spell lone surrogates, which nothing can encode back (a reply, a stored comment)
    return bounds.value(body, limit=1000) if isinstance(body, dict) else {}


def _page() -> int:
    return request.args.get("page", 1, type=int) or 1


@bp.get("/overview")
def overview():
    return jsonify(data.overview(_redis(), _settings()))


@bp.get("/groups")
def group_list():
    return jsonify(groups=data.groups.open_groups(_redis()))


@bp.get("/groups/<gid>")
def group_one(gid: str):
    found = data.group(_redis(), gid, _settings(), **data.events_page(request.args))
    return jsonify(found) if found else error_response("group-unknown")


@bp.get("/silences")
def silence_list():
    return jsonify(silences=silences.stored(_redis()), active=silences.active(_redis()))


def silence_request(body: dict) -> tuple[dict, float, str]:
    """Matchers, end time and comment of a silence request; SilenceError when unusable."""
    matchers = body.get("matchers")
    if not isinstance(matchers, dict):
        raise silences.SilenceError('matchers must be an object, e.g. {"code": 131049}')
    try:
        seconds = parse_duration(body.get("duration", "2h"))
    except ValueError as error:
        raise silences.SilenceError(f"duration: {error}") from None
    if not 0 < seconds <= SILENCE_MAX_SECONDS:
        raise silences.SilenceError("duration must be more than 0 and at most 365d")
    return matchers, time.time() + seconds, str(body.get("comment") or "")[:500]


@bp.post("/silences/preview")
def silence_preview():
    try:
        matchers, _, _ = silence_request(_body())
        return jsonify(data.preview(_redis(), matchers))
    except silences.SilenceError as error:
        return error_response("silence-invalid", str(error))


@bp.post("/silences")
def silence_create():
    try:
        matchers, ends_at, comment = silence_request(_body())
        matched = data.preview(_redis(), matchers)
        created = silences.add(_redis(), matchers, ends_at, comment, created_by=auth.who() or "")
    except silences.SilenceError as error:
        return error_response("silence-invalid", str(error))
    auth.audit(
        "console.silence.created",
        silence=created["id"],
        matchers=created["matchers"],
        ends_at=ends_at,
        comment=comment,
        open_events=matched["events"],
    )
    return jsonify(silence=created, preview=matched), 201


@bp.post("/silences/<silence_id>/expire")
def silence_expire(silence_id: str):
    if not silences.expire(_redis(), silence_id):
        return error_response("silence-unknown")
    auth.audit("console.silence.expired", silence=silence_id)
    return jsonify(expired=silence_id)


@bp.get("/dead-letters")
def dead_list():
    return jsonify(dead_letters=data.dead_letters(_redis()))


@bp.get("/dead-letters/<dead_id>")
def dead_one(dead_id: str):
    found = deadletters.get(_redis(), dead_id)
    return jsonify(found.to_dict()) if found else error_response("dead-letter-unknown")


@bp.post("/dead-letters/<dead_id>/replay")
def dead_replay(dead_id: str):
    try:
        done = replay_dead_letter(_redis(), dead_id)
    except deadletters.UnknownDeadLetter:
        return error_response("dead-letter-unknown")
    auth.audit("console.dead_letter.replayed", dead_letter=dead_id, result=done)
    return jsonify(replayed=[done])


def confirmed(count: int) -> bool:
    """A replay of everything names how many it expects: what the person confirmed."""
    return _body().get("count") == count


@bp.post("/dead-letters/replay")
def dead_replay_all():
    ids = [entry.id for entry in deadletters.entries(_redis())]
    if not confirmed(len(ids)):
        return error_response("count-changed", count=len(ids))
    done = []
    for dead_id in ids:
        try:
            done.append(replay_dead_letter(_redis(), dead_id))
        except deadletters.UnknownDeadLetter:
            continue  # replayed by someone else meanwhile
    auth.audit("console.dead_letter.replayed_all", count=len(done))
    return jsonify(replayed=done)


@bp.get("/quarantine")
def quarantine_list():
    return jsonify(quarantine=data.quarantined(_redis()))


@bp.get("/quarantine/<entry_id>")
def quarantine_one(entry_id: str):
    found = _quarantined(entry_id)
    return jsonify(found.to_dict()) if found else error_response("quarantine-unknown")


def _quarantined(entry_id: str) -> quarantine.Quarantined | None:
    try:
        return quarantine.get(_redis(), entry_id)
    except redis.ResponseError:  # not a stream id at all
        return None


def replay_quarantined(entries: list[quarantine.Quarantined]) -> list[dict]:
    dedup = _settings().dedup_seconds
    done = [quarantine.replay(_redis(), entry, dedup).to_dict() for entry in entries]
    auth.audit(
        "console.quarantine.replayed",
        ids=[entry["id"] for entry in done],
        replayed=sum(entry["replayed"] for entry in done),
    )
    return done


@bp.post("/quarantine/<entry_id>/replay")
def quarantine_replay(entry_id: str):
    found = _quarantined(entry_id)
    if found is None:
        return error_response("quarantine-unknown")
    return jsonify(replayed=replay_quarantined([found]))


@bp.post("/quarantine/replay")
def quarantine_replay_all():
    entries = quarantine.entries(_redis())
    if not confirmed(len(entries)):
        return error_response("count-changed", count=len(entries))
    return jsonify(replayed=replay_quarantined(entries))


@bp.get("/health")
def health():
    return jsonify(data.health(_redis()))


@bp.get("/catalog")
def catalog_search():
    return jsonify(entries=data.catalog_search(request.args.get("q", "")))


@bp.get("/funnels")
def funnel():
    try:
        found = data.funnel(
            _redis(),
            _settings(),
            request.args.get("by", "tracker"),
            request.args.get("since", "24h"),
        )
    except ValueError as error:
        return error_response("funnel-invalid", str(error))
    return jsonify(found)


@bp.get("/funnels/failed")
def funnel_failed():
    tracker = request.args.get("tracker", "")
    return jsonify(tracker=tracker, failed=data.failed_recipients(_redis(), _settings(), tracker))


@bp.get("/messages/<wamid>")
def message(wamid: str):
    if _settings().track_messages <= 0:
        return error_response("tracking-off")
    found = data.message(_redis(), _settings(), wamid)
    return jsonify(found) if found else error_response("message-unknown")


@bp.errorhandler(redis.RedisError)
def redis_down(error: redis.RedisError):
    return error_response("redis-unavailable")


bp.before_request(auth.api_guard)
