"""Receivers: where alert notifications go, and one attempt to send one notification there.

Types: `webhook` (the alert JSON for machines, signed the Standard Webhooks way), `apprise`
(readable text for people through Apprise URLs: Slack, Teams, Discord, e-mail, Telegram,
PagerDuty, …), `alertmanager` (one Alertmanager alert per group, `workers.alertmanager`) and
`log` (a JSON line in the worker's log). Without configuration the receivers come from the
settings: `alertmanager` from `WASTATUS_ALERTMANAGER_URL`, `webhook` from
`WASTATUS_ALERT_WEBHOOK_URL`, `apprise` from `WASTATUS_ALERT_URLS`, and `log` when none is
set; the rules file may name more
(`receivers: [{name, type, url|urls, secret}]`). Alerts never go over WhatsApp itself: when
WhatsApp is what fails, it cannot carry the news, and it would cost conversations.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter

from workers import logs
from workers.alerting import alertmanager
from workers.alerting import text as alert_text
from workers.delivery import DeliveryResult, post_json
from workers.routing.rules import current_rules
from workers.settings import Settings, current, whatsapp_refusal
from workers.signing import InvalidSecret, secret_key, sign_standard_webhook

TYPES = ("webhook", "apprise", "alertmanager", "log")

log = logging.getLogger("wastatus.alerts")

NOTIFICATIONS_SENT = Counter(
    "wastatus_alert_notifications_sent",
    "Alert notifications a receiver accepted, by receiver and status (firing, update, repeat).",
    ["receiver", "status"],
)
NOTIFICATIONS_FAILED = Counter(
    "wastatus_alert_notifications_failed",
    "Attempts to send an alert notification that failed, by receiver.",
    ["receiver"],
)


class ReceiverConfigError(ValueError):
    """A receiver that cannot be used: unknown type or name, missing URL, a WhatsApp URL."""


@dataclass(frozen=True)
class Receiver:
    name: str
    type: str
    urls: tuple[str, ...] = ()
    secret: str | None = None


@dataclass(frozen=True)
class Attempt:
    """The outcome of one try: `ok`, else why and when to try again (`retry_after`)."""

    ok: bool
    error: str | None = None
    retry_after: float | None = None
    done_targets: tuple[int, ...] = field(default=())


def check_url(url: str) -> str:
    """`url` unless it would send alerts over WhatsApp (refused, with the reason)."""
    refusal = whatsapp_refusal(url)
    if refusal:
        raise ReceiverConfigError(refusal)
    return url


def _urls(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    parts = value.split(",") if isinstance(value, str) else list(value)
    return tuple(check_url(str(part).strip()) for part in parts if str(part).strip())


def make(spec: Mapping) -> Receiver:
    """A receiver from a rules-file entry `{name, type, url|urls, secret}`."""
    name = str(spec.get("name") or "").strip()
    kind = str(spec.get("type") or "").strip()
    if not name:
        raise ReceiverConfigError("a receiver needs a name")
    if kind not in TYPES:
        raise ReceiverConfigError(f"receiver {name}: type must be one of {', '.join(TYPES)}")
    urls = _urls(spec.get("urls", spec.get("url")))
    if kind != "log" and not urls:
        raise ReceiverConfigError(f"receiver {name}: a {kind} receiver needs url or urls")
    if kind == "webhook" and len(urls) != 1:
        raise ReceiverConfigError(f"receiver {name}: a webhook receiver takes exactly one url")
    if kind == "alertmanager":
        try:
            urls = tuple(alertmanager.base_url(url) for url in urls)
        except ValueError as error:
            raise ReceiverConfigError(f"receiver {name}: {error}") from None
    return Receiver(name, kind, urls, _checked_secret(spec.get("secret"), name))


def _checked_secret(secret: object, name: str) -> str | None:
    """The secret if it is a usable `whsec_<base64>` key (a bad one fails at load, not per send)."""
    if not secret:
        return None
    try:
        secret_key(str(secret))
    except InvalidSecret as error:
        raise ReceiverConfigError(f"receiver {name}: {error}") from None
    return str(secret)


def problems(specs: Sequence[Mapping]) -> list[str]:
    """What is wrong with the rules file's `receivers:` entries, for `wastatus rules check`."""
    found = []
    for index, spec in enumerate(specs):
        try:
            make(spec)
        except ReceiverConfigError as error:
            found.append(f"receivers[{index}]: {error}")
    return found


def from_settings(settings: Settings | None = None) -> dict[str, Receiver]:
    """The receivers the settings define: alertmanager, webhook, apprise, and always log."""
    settings = settings or current()
    found: dict[str, Receiver] = {}
    if settings.alertmanager_urls:
        found["alertmanager"] = Receiver("alertmanager", "alertmanager", settings.alertmanager_urls)
    if settings.alert_webhook_url:
        secret = settings.alert_webhook_secret or settings.retry_secret
        found["webhook"] = Receiver("webhook", "webhook", (settings.alert_webhook_url,), secret)
    if settings.alert_urls:
        found["apprise"] = Receiver("apprise", "apprise", settings.alert_urls)
    found["log"] = Receiver("log", "log")
    return found


def configured(settings: Settings | None = None) -> dict[str, Receiver]:
    """Every receiver by name: the settings', then the rules file's (which may override)."""
    settings = settings or current()
    found = from_settings(settings)
    if not settings.rules_path:
        return found
    for spec in current_rules(settings).receivers:
        receiver = make(spec)
        found[receiver.name] = receiver
    return found


def default_chain(settings: Settings | None = None) -> tuple[str, ...]:
    """Receivers for a route that names none: alertmanager, webhook then apprise (a fallback
    chain: Alertmanager routes when it is up, the others carry the alert when it is not), or
    the log alone."""
    found = from_settings(settings)
    names = tuple(name for name in ("alertmanager", "webhook", "apprise") if name in found)
    return names or ("log",)


def chain(names: Sequence[str], settings: Settings | None = None) -> list[Receiver]:
    """The receivers `names` (empty: the default chain), in order; unknown names raise."""
    known = configured(settings)
    wanted = tuple(names) or default_chain(settings)
    missing = [name for name in wanted if name not in known]
    if missing:
        raise ReceiverConfigError(f"unknown receiver {', '.join(missing)}; known: {sorted(known)}")
    return [known[name] for name in wanted]


def _send_webhook(receiver: Receiver, alert: dict, msg_id: str, settings: Settings) -> Attempt:
    body = json.dumps(alert, ensure_ascii=False, separators=(",", ":")).encode()
    headers = sign_standard_webhook(receiver.secret, msg_id, int(time.time()), body)
    result: DeliveryResult = post_json(receiver.urls[0], body, headers, settings.http_timeout)
    if result.ok:
        return Attempt(True)
    return Attempt(False, result.error, result.retry_after_seconds)


def _send_apprise(
    receiver: Receiver, alert: dict, done: Sequence[int], settings: Settings
) -> Attempt:
    """Each URL on its own, so a retry does not repeat the message where it already went."""
    import apprise  # a heavy import: only workers that send to people pay for it

    lang = settings.lang
    title, text = alert_text.title(alert, lang), alert_text.body(alert, lang)
    finished = list(done)
    errors = []
    for index, url in enumerate(receiver.urls):
        if index in finished:
            continue
        notifier = _apprise(url)
        if notifier is None:
            errors.append(f"target {index}: apprise does not understand this URL")
            continue
        if notifier.notify(body=text, title=title, notify_type=apprise.NotifyType.FAILURE):
            finished.append(index)
        else:
            errors.append(f"target {index}: apprise could not deliver")
    if errors:
        return Attempt(False, "; ".join(errors), None, tuple(finished))
    return Attempt(True, done_targets=tuple(finished))


def _apprise(url: str) -> Any:
    """An Apprise notifier for `url`, or None when Apprise does not understand the URL."""
    import apprise  # a heavy import: only workers that send to people pay for it

    notifier = apprise.Apprise()
    with warnings.catch_warnings():  # apprise's plugin loading imports the deprecated imghdr
        warnings.simplefilter("ignore", DeprecationWarning)
        understood = notifier.add(url)
    return notifier if understood else None


def url_problems(receiver: Receiver) -> list[str]:
    """What Apprise cannot parse among an apprise receiver's URLs (by position, no secrets)."""
    if receiver.type != "apprise":
        return []
    return [f"receiver {receiver.name}: URL {index + 1} is not one Apprise understands"
            for index, url in enumerate(receiver.urls) if _apprise(url) is None]  # fmt: skip


def _send_log(alert: dict, settings: Settings) -> Attempt:
    """One structured log line (the alert as fields, not a JSON string inside the line)."""
    lang = settings.lang
    logs.log(log, "alert", logging.WARNING, title=alert_text.title(alert, lang), alert=alert)
    return Attempt(True)


def send(
    receiver: Receiver,
    alert: dict,
    msg_id: str,
    done: Sequence[int] = (),
    settings: Settings | None = None,
) -> Attempt:
    """One try at delivering `alert` (already addressed to `receiver`); never raises on I/O."""
    settings = settings or current()
    if receiver.type == "webhook":
        attempt = _send_webhook(receiver, alert, msg_id, settings)
    elif receiver.type == "apprise":
        attempt = _send_apprise(receiver, alert, done, settings)
    elif receiver.type == "alertmanager":
        result = alertmanager.send(receiver.urls, alert, settings)
        attempt = Attempt(result.ok, result.error, result.retry_after_seconds)
    else:
        attempt = _send_log(alert, settings)
    if attempt.ok:
        NOTIFICATIONS_SENT.labels(receiver.name, alert["status"]).inc()
    else:
        NOTIFICATIONS_FAILED.labels(receiver.name).inc()
    return attempt
