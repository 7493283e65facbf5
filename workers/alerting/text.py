"""The words of an alert for people (chat, e-mail), in Japanese or English.

Machines get the alert JSON; people get a title and a short body built from it here, so the
apprise and log receivers say the same thing. The language is `WASTATUS_LANG` (ja or en).
"""

from __future__ import annotations

from collections.abc import Mapping

from workers.alerting import fate_text, health_text

LANGUAGES = ("ja", "en")

_WORDS = {
    "ja": {
        "firing": "新しいエラー",
        "update": "エラー続報",
        "repeat": "未解決のエラー(再通知)",
        "exhausted": "再送上限到達",
        "count": "件数",
        "since": "期間",
        "number": "送信元番号",
        "what": "内容",
        "todo": "対処",
        "retry": "再送",
        "examples": "例",
        "more": "ほか {n} 件",
        "policy": {"never": "再送しても解決しません", "after_delay": "時間をおいて再送",
                   "immediate": "すぐ再送して大丈夫です"},
        "unit": "件",
        "summary": "{what}: {count} 件({since} から)",
    },
    "en": {
        "firing": "New failure",
        "update": "Failure update",
        "repeat": "Still failing (reminder)",
        "exhausted": "resends exhausted",
        "count": "Count",
        "since": "Seen",
        "number": "Phone number id",
        "what": "What happened",
        "todo": "What to do",
        "retry": "Resend",
        "examples": "Examples",
        "more": "and {n} more",
        "policy": {"never": "resending will not help", "after_delay": "resend after a delay",
                   "immediate": "safe to resend now"},
        "unit": "events",
        "summary": "{what}: {count} events since {since}",
    },
}  # fmt: skip


def title(alert: Mapping, lang: str) -> str:
    """One line: what kind of notification, which code, how many."""
    words = _WORDS[lang]
    first = (alert.get("alerts") or [{}])[0]
    if first.get("kind") == "health":
        return health_text.title(alert, lang)
    if first.get("kind") in fate_text.KINDS:
        return fate_text.title(alert, lang)
    status = words.get(alert["status"], alert["status"])
    if alert.get("retry_exhausted"):
        status = f"{status} ({words['exhausted']})"
    code = first.get("code")
    name = first.get("title") or ""
    return f"[wastatus] {status}: {code} {name} ×{alert['count']}".strip()


def body(alert: Mapping, lang: str, examples: int = 3) -> str:
    """A few short lines: the explanation and the action in `lang`, counts and examples, and
    the console link when `WASTATUS_PUBLIC_URL` gave one."""
    first = (alert.get("alerts") or [{}])[0]
    if first.get("kind") == "health":
        text = health_text.body(alert, lang)
    elif first.get("kind") in fate_text.KINDS:
        text = fate_text.body(alert, lang)
    else:
        text = _failure_body(alert, lang, examples)
    return f"{text}\n{alert['url']}" if alert.get("url") else text


def _failure_body(alert: Mapping, lang: str, examples: int) -> str:
    words = _WORDS[lang]
    sample = alert.get("alerts") or []
    first = sample[0] if sample else {}
    retry = first.get("retry") or {}
    lines = [
        f"{words['count']}: {alert['count']} {words['unit']}",
        f"{words['since']}: {alert['first_seen']} – {alert['last_seen']}",
    ]
    if first.get("phone_number_id"):
        lines.append(f"{words['number']}: {first['phone_number_id']}")
    lines.append(f"{words['what']}: {(first.get('explanation') or {}).get(lang, '')}")
    lines.append(f"{words['todo']}: {(first.get('action') or {}).get(lang, '')}")
    if retry.get("policy"):
        lines.append(f"{words['retry']}: {words['policy'].get(retry['policy'], retry['policy'])}")
    shown = sample[:examples]
    if shown:
        lines.append(f"{words['examples']}:")
        for item in shown:
            lines.append(f"  - {item.get('message_id') or '-'} → {item.get('recipient_id') or '-'}")
        if alert["count"] > len(shown):
            lines.append("  " + words["more"].format(n=alert["count"] - len(shown)))
    later = fate_text.later_delivered(alert, lang)  # statuses arrive out of order
    if later:
        lines.append(later)
    lines.append(f"group: {alert['group_key']}")
    return "\n".join(lines)


def summary(alert: Mapping, lang: str) -> str:
    """One line for an alert that stays open (Alertmanager's `summary`): no notification
    kind, since the same words are posted again while the group fires."""
    words = _WORDS[lang]
    first = (alert.get("alerts") or [{}])[0]
    if first.get("kind") in fate_text.KINDS:
        return fate_text.title(alert, lang).removeprefix("[wastatus] ")
    what = " ".join(str(part) for part in (first.get("code"), first.get("title")) if part)
    line = words["summary"].format(what=what or alert.get("group_key"), count=alert["count"],
                                   since=alert.get("first_seen"))  # fmt: skip
    return f"{line} ({words['exhausted']})" if alert.get("retry_exhausted") else line


def resend_advice(alert: Mapping, lang: str) -> str:
    """Whether resending helps, in `lang` (empty when the catalog has no policy)."""
    first = (alert.get("alerts") or [{}])[0]
    policy = (first.get("retry") or {}).get("policy")
    return _WORDS[lang]["policy"].get(policy, policy or "")
