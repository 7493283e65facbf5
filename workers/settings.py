"""Every setting wastatus reads, declared once: its variable, its form, its default and range.

A process reads them all when it starts (`load`), so a bad value stops `serve`, `worker`, `up`
or any CLI command at once with a sentence that names the variable, the value and the accepted
form, never a crash inside a job later. Jobs and views take the validated values from
`current()`, which a forked RQ work horse inherits from its worker. Every setting has a
`WASTATUS_` name except `REDIS_URL`, `PORT` and `WEB_CONCURRENCY`, the names hosting platforms use.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from workers.signing import InvalidSecret, secret_key

DEFAULT_DATA_DIR = ".wastatus"
# `wastatus up` writes the URL of the Redis it runs here, so other commands find it.
REDIS_URL_FILE = "redis.url"

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
DURATION_FORM = "a number of seconds, or with ms, s, m, h or d (500ms, 30s, 5m, 4h, 8d)"


class SettingsError(ValueError):
    """One or more settings cannot be used; `problems` has one sentence for each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems

    def report(self) -> str:
        """What a process prints when it refuses to start (see README, Configuration)."""
        lines = [f"wastatus: cannot start: {len(self.problems)} setting(s) cannot be used"]
        lines += [f"  {problem}" for problem in self.problems]
        return "\n".join(lines) + "\n"


def parse_duration(value: Any) -> float:
    """Seconds from `30s`, `5m`, `4h`, `8d`, `500ms` or a bare number; ValueError otherwise.

    A number (as YAML gives one) is seconds too. Negative, infinite and NaN are refused.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration: use {DURATION_FORM}")
    if isinstance(value, (int, float)):
        seconds = float(value)
        if seconds < 0:
            raise ValueError(f"{value!r} is negative; a duration is 0 or more")
    else:
        text = str(value)
        match = _DURATION.match(text)
        if not match:
            if text.strip().startswith("-"):
                raise ValueError(f"{text!r} is negative; a duration is 0 or more")
            raise ValueError(f"{text!r} is not a duration: use {DURATION_FORM}")
        number, unit = match.groups()
        seconds = float(number) * _UNITS[(unit or "s").lower()]
    if math.isnan(seconds):
        raise ValueError(f"{value!r} is not a duration: use {DURATION_FORM}")
    if math.isinf(seconds):
        raise ValueError(f"{value!r} is too large for a duration")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact way to write `seconds` in the units `parse_duration` reads."""
    if seconds == 0:
        return "0s"
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


# ---- the forms a setting can take: each parses the stripped text or raises ValueError


def _duration(text: str) -> float:
    return parse_duration(text)


def _count(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text):
        raise ValueError(f"{text!r} is not a whole number")
    if len(text) > 30:  # beyond any range below; int() of thousands of digits is refused anyway
        raise ValueError(f"{text!r} is too large")
    return int(text)


def _rate(text: str) -> float:
    """Per second: `200`, `200/s`, `12000/m`."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(?:/\s*([smh]))?", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"{text!r} is not a rate like 200, 200/s or 12000/m")
    per = {"s": 1.0, "m": 60.0, "h": 3600.0}[(match.group(2) or "s").lower()]
    return float(match.group(1)) / per


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE | _FALSE:
        return lowered in _TRUE
    raise ValueError(f"{text!r} is not on or off: use 1, true, yes, on or 0, false, no, off")


def _percent(text: str) -> float:
    """A percentage: `20`, `20%`, `2.5%`."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%?", text)
    if not match:
        raise ValueError(f"{text!r} is not a percentage like 20 or 20%")
    return float(match.group(1))


def _text(text: str) -> str:
    return text


def _list(text: str) -> tuple[str, ...]:
    """Comma-separated, blanks dropped (several apps, or a rotation of secrets)."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _http_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not an http:// or https:// URL")
    return text


def _alertmanager_urls(text: str) -> tuple[str, ...]:
    """Alertmanager base URLs, comma-separated (an HA cluster: every one gets each alert);
    `/api/v2/alerts` is added when posting, so a URL that already ends in it is cut back."""
    urls = []
    for part in _list(text):
        parts = urlsplit(part)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{_without_password(part)!r} is not an http:// or https:// URL")
        urls.append(part.rstrip("/").removesuffix("/api/v2/alerts").rstrip("/"))
    if not urls:
        raise ValueError("no URL given")
    return tuple(urls)


def _redis_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"{text!r} is not a redis://, rediss:// or unix:// URL")
    return text


def whatsapp_refusal(url: str) -> str | None:
    """Why `url` cannot receive alerts when it would send them over WhatsApp, else None."""
    scheme = url.split("://", 1)[0].strip().lower()
    if scheme != "whatsapp":
        return None
    return (
        f"refusing {scheme}:// as an alert receiver: alerts never go over WhatsApp itself "
        "(WhatsApp may be what is failing, and each alert would cost a conversation); "
        "use Slack, Teams, Discord, e-mail, Telegram, PagerDuty or a webhook instead"
    )


def _alert_urls(text: str) -> tuple[str, ...]:
    """Apprise URLs, comma-separated; a WhatsApp one is refused (`wastatus rules check` and
    `wastatus worker` ask Apprise whether each parses: its import is too slow for every start)."""
    urls = _list(text)
    for url in urls:
        refusal = whatsapp_refusal(url)
        if refusal:
            raise ValueError(refusal)
    return urls


def _sentinels(text: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` (port 26379 when left out), as redis-py's Sentinel wants them."""
    found = []
    for part in _list(text):
        host, _, port = part.rpartition(":") if ":" in part else (part, "", "26379")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{part!r} is not host:port")
        found.append((host.strip("[]"), int(port)))
    if not found:
        raise ValueError("no host:port given")
    return tuple(found)


def _standard_webhook_secret(text: str) -> str:
    try:
        secret_key(text)
    except InvalidSecret as error:
        raise ValueError(str(error)) from None
    return text


def _language(text: str) -> str:
    lowered = text.lower()[:2]  # ja_JP.UTF-8 as a locale writes it
    if lowered not in ("ja", "en"):
        raise ValueError(f"{text!r} is not ja or en")
    return lowered


CONSOLE_HASH_METHODS = ("scrypt:", "pbkdf2:")
"""Password hash methods `werkzeug.security` writes (`wastatus console hash-password`)."""


def _console_users(text: str) -> tuple[tuple[str, str], ...]:
    """`user:hash,user:hash`; a werkzeug hash holds colons itself, so the name ends at the first."""
    users = []
    for pair in _list(text):
        name, _, hashed = pair.partition(":")
        if not name.strip() or not hashed.startswith(CONSOLE_HASH_METHODS):
            raise ValueError(f"{text!r} is not user:password-hash pairs")
        users.append((name.strip(), hashed))
    if len({name for name, _ in users}) != len(users):
        raise ValueError(f"{text!r} names a user twice")
    return tuple(users)


def _long_secret(text: str) -> str:
    if len(text) < 32:
        raise ValueError(f"{text!r} is shorter than 32 characters")
    return text


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        lowered = text.lower()
        if lowered not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return lowered

    parse.form = f"one of {', '.join(choices)}"  # type: ignore[attr-defined]
    return parse


_LOG_LEVELS = _choice("debug", "info", "warning", "error", "critical")


def _log_level(text: str) -> str:
    return _LOG_LEVELS(text).upper()


_log_level.form = _LOG_LEVELS.form  # type: ignore[attr-defined]


_FORMS: dict[Callable, str] = {
    _duration: DURATION_FORM,
    _count: "a whole number",
    _rate: "a number per second (200, 200/s, 12000/m)",
    _flag: "1, true, yes, on or 0, false, no, off",
    _http_url: "an http:// or https:// URL",
    _redis_url: "a redis://, rediss:// or unix:// URL",
    _alertmanager_urls: "http:// or https:// URLs, comma-separated",
    _sentinels: "host:port, comma-separated",
    _alert_urls: "Apprise URLs, comma-separated",
    _list: "comma-separated values",
    _standard_webhook_secret: "whsec_ followed by base64",
    _language: "ja or en",
    _console_users: "user:password-hash pairs, comma-separated (wastatus console hash-password)",
    _long_secret: "text of at least 32 characters",
    _percent: "a percentage (20, 20%)",
}


def setting(
    name: str,
    parse: Callable[[str], Any],
    default: Any = None,
    low: float | None = None,
    high: float | None = None,
    secret: bool = False,
) -> Any:
    """A dataclass field read from the variable `name` with `parse`, within [`low`, `high`].

    A `secret` one is never echoed in an error message (nor is a URL's password).
    """
    metadata = {"name": name, "parse": parse, "low": low, "high": high, "secret": secret}
    return field(default=default, metadata=metadata)


DAY = 86400.0


@dataclass(frozen=True)
class Settings:
    """The validated value of every setting; defaults where a variable is unset or blank."""

    # web endpoint and storage
    redis_url: str | None = setting("REDIS_URL", _redis_url)
    redis_sentinels: tuple[tuple[str, int], ...] = setting(
        "WASTATUS_REDIS_SENTINELS", _sentinels, ()
    )
    redis_sentinel_master: str = setting("WASTATUS_REDIS_SENTINEL_MASTER", _text, "mymaster")
    redis_sentinel_password: str | None = setting(
        "WASTATUS_REDIS_SENTINEL_PASSWORD", _text, secret=True
    )
    redis_password: str | None = setting("WASTATUS_REDIS_PASSWORD", _text, secret=True)
    redis_db: int = setting("WASTATUS_REDIS_DB", _count, 0, 0, 100_000)
    redis_connect_timeout: float = setting(
        "WASTATUS_REDIS_CONNECT_TIMEOUT", _duration, 1.0, 0.01, 300
    )
    redis_timeout: float = setting("WASTATUS_REDIS_TIMEOUT", _duration, 5.0, 0.01, 300)
    data_dir: str = setting("WASTATUS_DATA_DIR", _text, DEFAULT_DATA_DIR)
    app_secrets: tuple[str, ...] = setting("WASTATUS_APP_SECRET", _list, (), secret=True)
    onprem_tokens: tuple[str, ...] = setting("WASTATUS_ONPREM_TOKEN", _list, (), secret=True)
    verify_token: str = setting("WASTATUS_VERIFY_TOKEN", _text, "", secret=True)
    insecure: bool = setting("WASTATUS_INSECURE", _flag, False)
    max_body: int = setting("WASTATUS_MAX_BODY", _count, 4 * 1024 * 1024, 1024, 1 << 30)
    dedup_window: float = setting("WASTATUS_DEDUP_WINDOW", _duration, 8 * DAY, 1, 365 * DAY)
    port: int = setting("PORT", _count, 8000, 1, 65535)
    web_concurrency: int = setting("WEB_CONCURRENCY", _count, 2, 1, 1024)
    server: str = setting("WASTATUS_SERVER", _choice("granian", "gunicorn"), "granian")
    web_threads: int = setting("WASTATUS_WEB_THREADS", _count, 4, 1, 1024)

    # workers, routing and resends
    rules_path: str | None = setting("WASTATUS_RULES", _text)
    retry_url: str | None = setting("WASTATUS_RETRY_URL", _http_url)
    retry_secret: str | None = setting(
        "WASTATUS_RETRY_SECRET", _standard_webhook_secret, secret=True
    )
    retry_rate: float = setting("WASTATUS_RETRY_RATE", _rate, 0.0, 0, 1_000_000)
    http_timeout: float = setting("WASTATUS_HTTP_TIMEOUT", _duration, 10.0, 0.01, 60)
    retry_attempts: int = setting("WASTATUS_RETRY_ATTEMPTS", _count, 5, 1, 50)
    retry_base_delay: float = setting("WASTATUS_RETRY_BASE_DELAY", _duration, 30.0, 0.001, 30 * DAY)
    retry_max_delay: float = setting("WASTATUS_RETRY_MAX_DELAY", _duration, 3600.0, 0.001, 30 * DAY)
    drain_batch: int = setting("WASTATUS_DRAIN_BATCH", _count, 500, 1, 5000)
    drain_seconds: float = setting("WASTATUS_DRAIN_SECONDS", _duration, 10.0, 0, 120)
    drain_lease: float = setting("WASTATUS_DRAIN_LEASE", _duration, 60.0, 1, DAY)
    drain_max_deliveries: int = setting("WASTATUS_DRAIN_MAX_DELIVERIES", _count, 5, 1, 1000)
    worker_maintenance: float = setting("WASTATUS_WORKER_MAINTENANCE", _duration, 60.0, 1, DAY)
    worker_ttl: float = setting("WASTATUS_WORKER_TTL", _duration, 60.0, 20, DAY)

    # alerts
    alert_webhook_url: str | None = setting("WASTATUS_ALERT_WEBHOOK_URL", _http_url)
    alert_webhook_secret: str | None = setting(
        "WASTATUS_ALERT_WEBHOOK_SECRET", _standard_webhook_secret, secret=True
    )
    alert_urls: tuple[str, ...] = setting("WASTATUS_ALERT_URLS", _alert_urls, (), secret=True)
    alertmanager_urls: tuple[str, ...] = setting(
        "WASTATUS_ALERTMANAGER_URL", _alertmanager_urls, ()
    )
    lang: str = setting("WASTATUS_LANG", _language, "ja")
    group_wait: float = setting("WASTATUS_GROUP_WAIT", _duration, 30.0, 0, DAY)
    group_interval: float = setting("WASTATUS_GROUP_INTERVAL", _duration, 300.0, 1, 7 * DAY)
    repeat_interval: float = setting(
        "WASTATUS_REPEAT_INTERVAL", _duration, 4 * 3600.0, 60, 30 * DAY
    )
    group_resolve: float = setting("WASTATUS_GROUP_RESOLVE", _duration, DAY, 0.1, 30 * DAY)
    # at least a notification's sample (20); about 60 bytes each while the group is open
    group_events: int = setting("WASTATUS_GROUP_EVENTS", _count, 1000, 20, 100_000)
    alert_attempts: int = setting("WASTATUS_ALERT_ATTEMPTS", _count, 5, 1, 1000)
    alert_retry_base: float = setting("WASTATUS_ALERT_RETRY_BASE", _duration, 5.0, 0.001, DAY)
    alert_retry_max: float = setting("WASTATUS_ALERT_RETRY_MAX", _duration, 600.0, 0.001, 7 * DAY)
    log_pii: bool = setting("WASTATUS_LOG_PII", _flag, False)

    # operations
    ready_max_backlog: int = setting("WASTATUS_READY_MAX_BACKLOG", _count, 100_000, 1, 10**12)
    log_level: str = setting("WASTATUS_LOG_LEVEL", _log_level, "INFO")
    log_requests: str = setting(
        "WASTATUS_LOG_REQUESTS", _choice("all", "failures", "none"), "failures"
    )

    # the console (docs/api.md)
    console_users: tuple[tuple[str, str], ...] = setting(
        "WASTATUS_CONSOLE_USERS", _console_users, (), secret=True
    )
    console_token: str | None = setting("WASTATUS_CONSOLE_TOKEN", _long_secret, secret=True)
    console_secret: str | None = setting("WASTATUS_CONSOLE_SECRET", _long_secret, secret=True)
    public_url: str | None = setting("WASTATUS_PUBLIC_URL", _http_url)

    # storage bounds (docs/operations.md, "Storage bounds")
    quarantine_max: int = setting("WASTATUS_QUARANTINE_MAX", _count, 1000, 1, 10_000_000)
    quarantine_bytes: int = setting(
        "WASTATUS_QUARANTINE_BYTES", _count, 64 * 1024 * 1024, 1024, 1 << 40
    )
    quarantine_body_max: int = setting(
        "WASTATUS_QUARANTINE_BODY_MAX", _count, 1024 * 1024, 256, 1 << 30
    )
    dead_retention: float = setting("WASTATUS_DEAD_RETENTION", _duration, 30 * DAY, 60, 3650 * DAY)
    dead_max: int = setting("WASTATUS_DEAD_MAX", _count, 10_000, 1, 10_000_000)
    silence_retention: float = setting(
        "WASTATUS_SILENCE_RETENTION", _duration, 7 * DAY, 0, 3650 * DAY
    )
    ready_max_inbox_age: float = setting(
        "WASTATUS_READY_MAX_INBOX_AGE", _duration, 300.0, 1, 30 * DAY
    )
    redis_maxmemory: int = setting(
        "WASTATUS_REDIS_MAXMEMORY", _count, 1024 * 1024 * 1024, 16 * 1024 * 1024, 1 << 40
    )

    # delivery funnels, message timelines, stuck messages (docs/operations.md, "Message fates")
    funnel_retention: float = setting(
        "WASTATUS_FUNNEL_RETENTION", _duration, 14 * DAY, 3600, 400 * DAY
    )
    funnel_flush: float = setting("WASTATUS_FUNNEL_FLUSH", _duration, 1.0, 0.05, 60)
    funnel_max_trackers: int = setting("WASTATUS_FUNNEL_MAX_TRACKERS", _count, 1000, 1, 100_000)
    funnel_alert_rate: float = setting("WASTATUS_FUNNEL_ALERT_RATE", _percent, 20.0, 0, 100)
    funnel_alert_min: int = setting("WASTATUS_FUNNEL_ALERT_MIN", _count, 100, 1, 10**9)
    funnel_alert_window: float = setting(
        "WASTATUS_FUNNEL_ALERT_WINDOW", _duration, 3600.0, 60, 7 * DAY
    )
    track_messages: float = setting("WASTATUS_TRACK_MESSAGES", _duration, 0.0, 0, 30 * DAY)
    stuck_after: float = setting("WASTATUS_STUCK_AFTER", _duration, DAY, 1, 30 * DAY)

    @property
    def authentication_configured(self) -> bool:
        return bool(self.app_secrets or self.onprem_tokens)

    @property
    def console_enabled(self) -> bool:
        """The console and its API answer only when someone can log in to them."""
        return bool(self.console_users or self.console_token)

    @property
    def dedup_seconds(self) -> int:
        """The dedup window in whole seconds, as Redis' SET EX takes it."""
        return math.ceil(self.dedup_window)

    @property
    def data_path(self) -> Path:
        """Where `wastatus up` keeps its embedded Redis and generated tokens."""
        return Path(self.data_dir).resolve()

    def redis_url_or_embedded(self) -> str | None:
        """`REDIS_URL`, else the URL of the Redis that `wastatus up` runs in the data dir."""
        if self.redis_url:
            return self.redis_url
        url_file = self.data_path / REDIS_URL_FILE
        if url_file.is_file():
            return url_file.read_text().strip() or None
        return None


_PAIRS = (
    ("retry_base_delay", "retry_max_delay"),
    ("alert_retry_base", "alert_retry_max"),
)


def read(env: Mapping[str, str] = os.environ) -> Settings:
    """Every setting from `env`, validated; raises SettingsError naming each bad one."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for spec in fields(Settings):
        meta = spec.metadata
        raw = env.get(meta["name"])
        if raw is None or not raw.strip():
            continue
        shown = _shown(meta, raw)
        try:
            value = meta["parse"](raw.strip())
        except ValueError as error:
            message = str(error).replace(repr(raw.strip()), shown)
            if meta["secret"] and raw.strip() in message:
                message = "not accepted"
            problems.append(f"{meta['name']}={shown}: {message}")
            continue
        if not _within(value, meta["low"], meta["high"]):
            problems.append(f"{meta['name']}={shown}: out of range; {_range(meta)}")
            continue
        values[spec.name] = value
    for low_name, high_name in _PAIRS:
        low = values.get(low_name, _default(low_name))
        high = values.get(high_name, _default(high_name))
        if low > high:
            problems.append(
                f"{_variable(high_name)} ({format_duration(high)}) is below"
                f" {_variable(low_name)} ({format_duration(low)})"
            )
    if values.get("console_users") and not values.get("console_secret"):
        problems.append(
            "WASTATUS_CONSOLE_USERS is set without WASTATUS_CONSOLE_SECRET, "
            "which signs the console's session cookies"
        )
    if problems:
        raise SettingsError(problems)
    return Settings(**values)


def _shown(meta: Mapping[str, Any], raw: str) -> str:
    # An error message must not print a secret into a terminal or a log.
    if meta["secret"]:
        return f"<{len(raw)} characters, not shown>"
    if meta["parse"] in (_redis_url, _http_url, _alertmanager_urls):
        return repr(",".join(_without_password(part) for part in raw.strip().split(",")))
    return repr(raw)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    try:
        password = parts.password
    except ValueError:  # a port that is not a number: nothing to hide behind it
        return url
    if not password:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":<not shown>@")
    return parts._replace(netloc=netloc).geturl()


def _within(value: Any, low: float | None, high: float | None) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    return (low is None or value >= low) and (high is None or value <= high)


def bounds(attribute: str) -> tuple[float, float]:
    """The range of the setting `attribute`: what a rules file's key of the same meaning takes."""
    meta = next(spec.metadata for spec in fields(Settings) if spec.name == attribute)
    return meta["low"], meta["high"]


def _default(attribute: str) -> Any:
    return next(spec.default for spec in fields(Settings) if spec.name == attribute)


def _variable(attribute: str) -> str:
    return next(spec.metadata["name"] for spec in fields(Settings) if spec.name == attribute)


def _range(meta: Mapping[str, Any]) -> str:
    low, high, parse = meta["low"], meta["high"], meta["parse"]
    show = format_duration if parse is _duration else (lambda number: f"{number:g}")
    return f"accepted: {_form(parse)} from {show(low)} to {show(high)}"


def _form(parse: Callable) -> str:
    return _FORMS.get(parse) or getattr(parse, "form", "text")


def describe() -> list[dict[str, Any]]:
    """Each setting's variable, form, default and range, for documentation and `--help`."""
    rows = []
    for spec in fields(Settings):
        meta = spec.metadata
        rows.append(
            {
                "variable": meta["name"],
                "attribute": spec.name,
                "form": _form(meta["parse"]),
                "default": spec.default,
                "low": meta["low"],
                "high": meta["high"],
            }
        )
    return rows


_NAMES = tuple(spec.metadata["name"] for spec in fields(Settings))
_loaded: tuple[tuple[str | None, ...], Settings] | None = None


def load(env: Mapping[str, str] = os.environ) -> Settings:
    """Read and validate every setting (SettingsError if one is bad); what `current()` gives."""
    global _loaded
    key = tuple(env.get(name) for name in _NAMES)
    if _loaded is None or _loaded[0] != key:
        _loaded = (key, read(env))
    return _loaded[1]


def current() -> Settings:
    """The settings of this process, as `load` validated them when it started.

    Read again only if the environment changed since (tests do; a running service does not),
    which costs a look-up per variable, so hot paths keep the object instead of calling this.
    """
    return load(os.environ)
