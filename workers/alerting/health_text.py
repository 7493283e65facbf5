"""The words of a health alert for people, in Japanese or English: what changed, until when.

`workers.alert_text` hands notifications whose items are health events here, so the apprise
and log receivers say "template order_update (ja): GREEN → YELLOW" rather than an error code.
Nothing here touches Redis.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

_WORDS = {
    "ja": {
        "firing": "健全性の問題",
        "update": "健全性の問題(続報)",
        "repeat": "未解決の健全性の問題(再通知)",
        "resolved": "解決",
        "brief": "{seconds} 秒で解決 (問題の通知前)",
        "template": "テンプレート",
        "phone_number": "電話番号",
        "waba": "WhatsApp ビジネスアカウント",
        "change": "変化",
        "until": "期限",
        "what": "内容",
        "todo": "対処",
        "count": "件数",
        "unknown": "カタログにない値",
        "ends": "{types} は {date} まで",
    },
    "en": {
        "firing": "Health problem",
        "update": "Health problem update",
        "repeat": "Health problem still open (reminder)",
        "resolved": "Resolved",
        "brief": "Resolved within {seconds} s (before its problem was notified)",
        "template": "template",
        "phone_number": "phone number",
        "waba": "WhatsApp Business Account",
        "change": "Change",
        "until": "Until",
        "what": "What happened",
        "todo": "What to do",
        "count": "Events",
        "unknown": "value not in the catalog",
        "ends": "{types} until {date}",
    },
}  # fmt: skip


def _tier(value: object) -> str:
    text = str(value)
    return "tier " + text.removeprefix("TIER_") if text.startswith("TIER_") else text


def date(timestamp: float | None) -> str | None:
    """Unix seconds as an ISO-8601 UTC time, as the alert JSON shows ends."""
    if timestamp is None:
        return None
    moment = dt.datetime.fromtimestamp(float(timestamp), dt.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def change(previous: Mapping | None, current: Mapping | None) -> str:
    """What changed, e.g. "GREEN → YELLOW", "tier 10K → tier 1K"; "" when nothing comparable."""
    previous, current = previous or {}, current or {}
    parts = []
    for key, now in current.items():
        if key == "restrictions" or isinstance(now, (dict, list)):
            continue
        show = _tier if key == "tier" else str
        before = previous.get(key)
        if before is not None and before != now:
            parts.append(f"{show(before)} → {show(now)}")
        elif before is None:
            parts.append(f"→ {show(now)}")
    return ", ".join(parts)


def ends(current: Mapping | None, lang: str) -> str:
    """A restriction's end as dates, "RESTRICTED_… until 2027-12-28T00:00:00Z"; else ""."""
    restrictions = (current or {}).get("restrictions") or []
    found = [
        _WORDS[lang]["ends"].format(types=item.get("type"), date=date(item["expiration"]))
        for item in restrictions
        if isinstance(item, Mapping) and isinstance(item.get("expiration"), (int, float))
    ]
    return "; ".join(found)


def entity_label(entity: Mapping | None, lang: str) -> str:
    """How people read an entity: `template order_update (ja)`, `phone number 15550783881`."""
    entity = entity or {}
    kind = _WORDS[lang].get(entity.get("type") or "", entity.get("type") or "?")
    name = entity.get("name") or entity.get("id") or "?"
    language = f" ({entity['language']})" if entity.get("language") else ""
    return f"{kind} {name}{language}"


def title(alert: Mapping, lang: str) -> str:
    """One line: the notification's status, the event and its entity, what changed."""
    words = _WORDS[lang]
    first = (alert.get("alerts") or [{}])[0]
    status = words.get(alert["status"], alert["status"])
    what = f"{first.get('field')}/{first.get('event')}"
    brief = first.get("brief")
    if alert["status"] == "resolved" and isinstance(brief, Mapping):
        # one notification tells both: the problem no one was told of, and its recovery
        status = words["brief"].format(seconds=brief.get("seconds"))
        what = f"{first.get('field')}/{brief.get('problem')} → {first.get('event')}"
    moved = change(first.get("previous"), first.get("current"))
    line = f"[wastatus] {status}: {what} {entity_label(first.get('entity'), lang)}"
    return f"{line} {moved}".strip()


def body(alert: Mapping, lang: str) -> str:
    """A few short lines: the change, its end, the explanation and the action in `lang`."""
    words = _WORDS[lang]
    sample = alert.get("alerts") or []
    first = sample[0] if sample else {}
    lines = [f"{words['count']}: {alert['count']}"]
    moved = change(first.get("previous"), first.get("current"))
    if moved:
        lines.append(f"{words['change']}: {moved}")
    until = ends(first.get("current"), lang)
    if until:
        lines.append(f"{words['until']}: {until}")
    if first.get("known") is False:
        lines.append(f"({words['unknown']}: {first.get('event')})")
    lines.append(f"{words['what']}: {(first.get('explanation') or {}).get(lang, '')}")
    lines.append(f"{words['todo']}: {(first.get('action') or {}).get(lang, '')}")
    lines.append(f"group: {alert['group_key']}")
    return "\n".join(lines)
