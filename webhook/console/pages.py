"""The console's pages: overview, a group, silences, dead letters, quarantine, the catalog,
the funnels and a message's timeline.

Server-rendered from `webhook.console.data`, as the API serves it; forms post back here (with
their CSRF token) and every change goes through the same functions as the API's.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import redis
from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from webhook import quarantine
from webhook.console import auth, chart, data, text
from webhook.errors import error_response
from workers.alerting import notifications, silences
from workers.outcomes import deadletters, exports, funnels
from workers.replay import replay as replay_dead_letter
from workers.settings import Settings, parse_duration

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates")

DURATIONS = ("1h", "2h", "4h", "8h", "1d", "7d")


def _redis() -> redis.Redis:
    return current_app.extensions["wastatus"].redis()


def _settings() -> Settings:
    return current_app.extensions["wastatus"].settings


def lang() -> str:
    chosen = session.get("lang")
    return chosen if chosen in text.LANGS else _settings().lang


@bp.app_template_global()
def t(key: str) -> str:
    return text.word(key, lang())


@bp.app_template_filter("iso")
def iso(timestamp: float | None) -> str:
    return notifications.iso(timestamp) or "—"


@bp.context_processor
def common() -> dict:
    return {"lang": lang(), "user": auth.who(), "csrf_token": auth.csrf_token}


bp.before_request(auth.page_guard)


@bp.errorhandler(redis.RedisError)
def redis_down(error: redis.RedisError):
    return error_response("redis-unavailable")


def _safe_next(target: str | None) -> str:
    """Only a path of this console: never an address elsewhere (an open redirect)."""
    parts = urlsplit(target or "")
    if parts.scheme or parts.netloc or not parts.path.startswith("/console"):
        return url_for("console.overview")
    return target  # type: ignore[return-value]


@bp.route("/login", methods=["GET", "POST"])
def login():
    settings, problem = _settings(), None
    if request.method == "POST":
        connection = _redis()
        if auth.login_blocked(connection):
            return render_template("login.html", problem=t("login_limited")), 429
        name = request.form.get("username", "")
        if auth.check_user(settings, name, request.form.get("password", "")):
            auth.login_succeeded(connection, name)
            return redirect(_safe_next(request.args.get("next")))
        auth.login_failed(connection)
        auth.audit("console.login_failed", attempted=name[:64])
        problem = t("login_failed")
        return render_template("login.html", problem=problem), 401
    return render_template("login.html", problem=problem, no_users=not settings.console_users)


@bp.post("/logout")
def logout():
    auth.audit("console.logout")
    session.clear()
    return redirect(url_for("console.login"))


@bp.post("/lang")
def switch_lang():
    chosen = request.form.get("lang")
    if chosen in text.LANGS:
        session["lang"] = chosen
    return redirect(_safe_next(request.form.get("next")))


@bp.get("/")
def overview():
    report = data.overview(_redis(), _settings())
    return render_template(
        "overview.html",
        report=report,
        chart=chart.svg(report["chart"]),
        health=data.health(_redis()),
    )


def _matchers_text(matchers: dict) -> str:
    def one(value: object) -> str:
        return "|".join(map(str, value)) if isinstance(value, list | tuple) else str(value)

    return "\n".join(f"{key}={one(value)}" for key, value in matchers.items())


def _matchers_from(form_text: str) -> dict:
    """`key=value` lines (or commas); `a|b` for any of several values."""
    found: dict[str, object] = {}
    for line in form_text.replace(",", "\n").splitlines():
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise silences.SilenceError(f"{line.strip()!r} is not key=value")
        values = [part.strip() for part in value.split("|") if part.strip()]
        found[key.strip()] = values if len(values) > 1 else (values[0] if values else "")
    return found


@bp.get("/groups/<gid>")
def group(gid: str):
    found = data.group(_redis(), gid, _settings(), **data.events_page(request.args))
    if found is None:
        return render_template("gone.html"), 404
    preview = (
        data.preview(_redis(), found["silence_matchers"]) if found["silence_matchers"] else None
    )
    return render_template(
        "group.html",
        group=found,
        preview=preview,
        durations=DURATIONS,
        matchers=_matchers_text(found["silence_matchers"]),
        default_size=data.PAGE_SIZE,
    )


@bp.post("/silences/preview")
def silence_preview():
    """The confirmation step: how many open events the silence matches, before it exists."""
    form = request.form
    try:
        matchers = _matchers_from(form.get("matchers", ""))
        preview = data.preview(_redis(), matchers)
        parse_duration(form.get("duration", ""))
    except (silences.SilenceError, ValueError) as error:
        return render_template("problem.html", problem=str(error)), 400
    return render_template("silence_confirm.html", preview=preview, form=form)


@bp.post("/silences")
def silence_create():
    form = request.form
    try:
        matchers = _matchers_from(form.get("matchers", ""))
        seconds = parse_duration(form.get("duration", ""))
        if not 0 < seconds <= 365 * 86400:
            raise ValueError("duration must be more than 0 and at most 365d")
        matched = data.preview(_redis(), matchers)
        created = silences.add(
            _redis(),
            matchers,
            time.time() + seconds,
            form.get("comment", "")[:500],
            created_by=auth.who() or "",
        )
    except (silences.SilenceError, ValueError) as error:
        return render_template("problem.html", problem=str(error)), 400
    auth.audit(
        "console.silence.created",
        silence=created["id"],
        matchers=created["matchers"],
        ends_at=created["ends_at"],
        comment=created["comment"],
        open_events=matched["events"],
    )
    return redirect(url_for("console.silence_list"))


@bp.get("/silences")
def silence_list():
    return render_template(
        "silences.html",
        durations=DURATIONS,
        silences=silences.stored(_redis()),
        rules=[s for s in silences.active(_redis(), _settings()) if s["source"] == "rules"],
    )


@bp.post("/silences/<silence_id>/expire")
def silence_expire(silence_id: str):
    if silences.expire(_redis(), silence_id):
        auth.audit("console.silence.expired", silence=silence_id)
    return redirect(url_for("console.silence_list"))


@bp.get("/dead")
def dead_list():
    return render_template("dead.html", entries=data.dead_letters(_redis()))


@bp.get("/dead/<dead_id>")
def dead_one(dead_id: str):
    found = deadletters.get(_redis(), dead_id)
    if found is None:
        return render_template("gone.html"), 404
    return render_template(
        "item.html",
        title=t("dead"),
        item=found.to_dict(),
        replay=url_for("console.dead_replay", dead_id=dead_id),
    )


def _confirm(action: str, count: int, back: str):
    return render_template("confirm.html", action=action, count=count, back=back)


@bp.post("/dead/<dead_id>/replay")
def dead_replay(dead_id: str):
    if request.form.get("confirmed") != "1":
        return _confirm(request.path, 1, url_for("console.dead_list"))
    try:
        done = replay_dead_letter(_redis(), dead_id)
    except deadletters.UnknownDeadLetter:
        return render_template("gone.html"), 404
    auth.audit("console.dead_letter.replayed", dead_letter=dead_id, result=done)
    return render_template("done.html", results=[done], back=url_for("console.dead_list"))


@bp.post("/dead/replay")
def dead_replay_all():
    ids = [entry.id for entry in deadletters.entries(_redis())]
    if request.form.get("count") != str(len(ids)):
        return _confirm(request.path, len(ids), url_for("console.dead_list"))
    done = []
    for dead_id in ids:
        try:
            done.append(replay_dead_letter(_redis(), dead_id))
        except deadletters.UnknownDeadLetter:
            continue
    auth.audit("console.dead_letter.replayed_all", count=len(done))
    return render_template("done.html", results=done, back=url_for("console.dead_list"))


@bp.get("/quarantine")
def quarantine_list():
    return render_template("quarantine.html", entries=data.quarantined(_redis()))


def _quarantined(entry_id: str) -> quarantine.Quarantined | None:
    try:
        return quarantine.get(_redis(), entry_id)
    except redis.ResponseError:
        return None


@bp.get("/quarantine/<entry_id>")
def quarantine_one(entry_id: str):
    found = _quarantined(entry_id)
    if found is None:
        return render_template("gone.html"), 404
    return render_template(
        "item.html",
        title=t("quarantine"),
        item=found.to_dict(),
        replay=url_for("console.quarantine_replay", entry_id=entry_id),
    )


def _replay_quarantined(entries: list[quarantine.Quarantined]):
    dedup = _settings().dedup_seconds
    done = [quarantine.replay(_redis(), entry, dedup).to_dict() for entry in entries]
    auth.audit(
        "console.quarantine.replayed",
        ids=[entry["id"] for entry in done],
        replayed=sum(entry["replayed"] for entry in done),
    )
    return render_template("done.html", results=done, back=url_for("console.quarantine_list"))


@bp.post("/quarantine/<entry_id>/replay")
def quarantine_replay(entry_id: str):
    found = _quarantined(entry_id)
    if found is None:
        return render_template("gone.html"), 404
    if request.form.get("confirmed") != "1":
        return _confirm(request.path, 1, url_for("console.quarantine_list"))
    return _replay_quarantined([found])


@bp.post("/quarantine/replay")
def quarantine_replay_all():
    entries = quarantine.entries(_redis())
    if request.form.get("count") != str(len(entries)):
        return _confirm(request.path, len(entries), url_for("console.quarantine_list"))
    return _replay_quarantined(entries)


@bp.get("/catalog")
def catalog_search():
    query = request.args.get("q", "")
    return render_template("catalog.html", query=query, entries=data.catalog_search(query))


@bp.get("/funnels")
def funnel():
    by, since = request.args.get("by", "tracker"), request.args.get("since", "24h")
    try:
        found = data.funnel(_redis(), _settings(), by, since)
    except ValueError as error:
        return render_template("problem.html", problem=str(error)), 400
    return render_template(
        "funnels.html",
        funnel=found,
        by=by,
        since=since,
        dimensions=funnels.DIMENSIONS,
        since_choices=data.SINCE_CHOICES,
        columns=("sent", "delivered", "read", "failed"),
        alert_rate=_settings().funnel_alert_rate,
    )


@bp.get("/funnels/failed.csv")
def funnel_failed():
    """A tracker's failed recipients as CSV (masked unless WASTATUS_LOG_PII)."""
    tracker = request.args.get("tracker", "")
    entries = funnels.failed_recipients(_redis(), tracker)
    auth.audit("console.funnel.exported", tracker=tracker[:128], rows=len(entries))
    body = exports.failed_csv(entries, _settings().log_pii, iso)
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in tracker)[:64] or "tracker"
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="failed-{name}.csv"'},
    )


@bp.get("/messages")
def message_lookup():
    wamid = request.args.get("wamid", "").strip()
    if wamid:
        return redirect(url_for("console.message", wamid=wamid))
    return render_template("message.html", found=None, wamid="", tracking=_tracking())


def _tracking() -> bool:
    return _settings().track_messages > 0


@bp.get("/messages/<wamid>")
def message(wamid: str):
    if not _tracking():
        return render_template("message.html", found=None, wamid=wamid, tracking=False), 409
    found = data.message(_redis(), _settings(), wamid)
    status = 200 if found else 404
    return render_template("message.html", found=found, wamid=wamid, tracking=True), status
