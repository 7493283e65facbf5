"""Receivers: where alert notifications go, and one attempt to send one notification there.

Types: `webhook` (the alert JSON for machines, signed the Standard Webhooks way), `apprise`
(readable text for people through Apprise URLs: Slack, Teams, Discord, e-mail, Telegram,
PagerDuty, …) and `log` (a JSON line in the worker's log). Without configuration the receivers
come from the environment: `webhook` from `WASTATUS_ALERT_WEBHOOK_URL`, `apprise` from
`WASTATUS_ALERT_URLS`, and `log` when neither is set; the rules file may name more
(`receivers: [{name, type, url|urls, secret}]`). Alerts never go over WhatsApp itself: when
WhatsApp is what fails, it cannot carry the news, and it would cost conversations.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import Counter

from workers import alert_text, config, logs
from workers.delivery import DeliveryResult, post_json
from workers.signing import InvalidSecret, secret_key, sign_standard_webhook

TYPES = ("webhook", "apprise", "log")
FORBIDDEN_SCHEMES = ("whatsapp",)
DEFAULT_TIMEOUT = 10.0

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

    def describe(self) -> dict:
        """The receiver without its secret or URL credentials, for `status` and logs."""
        return {"name": self.name, "type": self.type, "targets": len(self.urls)}


@dataclass(frozen=True)
class Attempt:
    """The outcome of one try: `ok`, else why and when to try again (`retry_after`)."""

    ok: bool
    error: str | None = None
    retry_after: float | None = None
    done_targets: tuple[int, ...] = field(default=())


def check_url(url: str) -> str:
    """`url` unless it would send alerts over WhatsApp (refused, with the reason)."""
    scheme = url.split("://", 1)[0].strip().lower()
    if scheme in FORBIDDEN_SCHEMES:
        raise ReceiverConfigError(
            f"refusing {scheme}:// as an alert receiver: alerts never go over WhatsApp itself "
            "(WhatsApp may be what is failing, and each alert would cost a conversation); "
            "use Slack, Teams, Discord, e-mail, Telegram, PagerDuty or a webhook instead"
        )
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


def _webhook_secret(env: Mapping[str, str]) -> str | None:
    return env.get("WASTATUS_ALERT_WEBHOOK_SECRET") or env.get("WASTATUS_RETRY_SECRET") or None


def from_env(env: Mapping[str, str] = os.environ) -> dict[str, Receiver]:
    """The receivers the environment defines: webhook, apprise, and always log."""
    found: dict[str, Receiver] = {}
    if env.get("WASTATUS_ALERT_WEBHOOK_URL", "").strip():
        url = check_url(env["WASTATUS_ALERT_WEBHOOK_URL"].strip())
        secret = _checked_secret(_webhook_secret(env), "webhook")
        found["webhook"] = Receiver("webhook", "webhook", (url,), secret)
    if _urls(env.get("WASTATUS_ALERT_URLS")):
        found["apprise"] = Receiver("apprise", "apprise", _urls(env.get("WASTATUS_ALERT_URLS")))
    found["log"] = Receiver("log", "log")
    return found


def _rules_receivers(env: Mapping[str, str]) -> list[Mapping]:
    path = env.get("WASTATUS_RULES")
    if not path:
        return []
    from workers.rules import current_rules

    return list(current_rules(env).receivers)


def configured(env: Mapping[str, str] = os.environ) -> dict[str, Receiver]:
    """Every receiver by name: the environment's, then the rules file's (which may override)."""
    found = from_env(env)
    for spec in _rules_receivers(env):
        receiver = spec if isinstance(spec, Receiver) else make(spec)
        found[receiver.name] = receiver
    return found


def default_chain(env: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """Receivers for a route that names none: webhook then apprise, or the log alone."""
    names = tuple(name for name in ("webhook", "apprise") if name in from_env(env))
    return names or ("log",)


def chain(names: Sequence[str], env: Mapping[str, str] = os.environ) -> list[Receiver]:
    """The receivers `names` (empty: the default chain), in order; unknown names raise."""
    known = configured(env)
    wanted = tuple(names) or default_chain(env)
    missing = [name for name in wanted if name not in known]
    if missing:
        raise ReceiverConfigError(f"unknown receiver {', '.join(missing)}; known: {sorted(known)}")
    return [known[name] for name in wanted]


def _timeout(env: Mapping[str, str]) -> float:
    return config.seconds(env, "WASTATUS_HTTP_TIMEOUT", DEFAULT_TIMEOUT)


def _send_webhook(receiver: Receiver, alert: dict, msg_id: str, env: Mapping) -> Attempt:
    body = json.dumps(alert, ensure_ascii=False, separators=(",", ":")).encode()
    headers = sign_standard_webhook(receiver.secret, msg_id, int(time.time()), body)
    result: DeliveryResult = post_json(receiver.urls[0], body, headers, _timeout(env))
    if result.ok:
        return Attempt(True)
    return Attempt(False, result.error, result.retry_after_seconds)


def _send_apprise(
    receiver: Receiver, alert: dict, done: Sequence[int], env: Mapping[str, str]
) -> Attempt:
    """Each URL on its own, so a retry does not repeat the message where it already went."""
    import apprise  # a heavy import: only workers that send to people pay for it

    lang = alert_text.language(env)
    title, text = alert_text.title(alert, lang), alert_text.body(alert, lang)
    finished = list(done)
    errors = []
    for index, url in enumerate(receiver.urls):
        if index in finished:
            continue
        notifier = apprise.Apprise()
        with warnings.catch_warnings():  # apprise's plugin loading imports the deprecated imghdr
            warnings.simplefilter("ignore", DeprecationWarning)
            understood = notifier.add(url)
        if not understood:
            errors.append(f"target {index}: apprise does not understand this URL")
            continue
        if notifier.notify(body=text, title=title, notify_type=apprise.NotifyType.FAILURE):
            finished.append(index)
        else:
            errors.append(f"target {index}: apprise could not deliver")
    if errors:
        return Attempt(False, "; ".join(errors), None, tuple(finished))
    return Attempt(True, done_targets=tuple(finished))


def _send_log(alert: dict, env: Mapping[str, str]) -> Attempt:
    """One structured log line (the alert as fields, not a JSON string inside the line)."""
    lang = alert_text.language(env)
    logs.log(log, "alert", logging.WARNING, title=alert_text.title(alert, lang), alert=alert)
    return Attempt(True)


def send(
    receiver: Receiver,
    alert: dict,
    msg_id: str,
    done: Sequence[int] = (),
    env: Mapping[str, str] = os.environ,
) -> Attempt:
    """One try at delivering `alert` (already addressed to `receiver`); never raises on I/O."""
    if receiver.type == "webhook":
        attempt = _send_webhook(receiver, alert, msg_id, env)
    elif receiver.type == "apprise":
        attempt = _send_apprise(receiver, alert, done, env)
    else:
        attempt = _send_log(alert, env)
    if attempt.ok:
        NOTIFICATIONS_SENT.labels(receiver.name, alert["status"]).inc()
    else:
        NOTIFICATIONS_FAILED.labels(receiver.name).inc()
    return attempt
