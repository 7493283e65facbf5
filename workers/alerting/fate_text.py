"""Alert items and words for message-fate alerts: a tracker failing too often ("funnel") and
messages stuck in `sent` ("stuck"), in Japanese or English.

Their events come from `workers.fates` (not from a webhook), carry the figures the alert
states under `fate`, and go through the same groups, receivers and ledger as failures.
"""

from __future__ import annotations

from collections.abc import Mapping

KINDS = frozenset({"funnel", "stuck"})

_WORDS = {
    "ja": {
        "funnel": "キャンペーン {tracker}: {rate:.0%} が失敗(主に {code})",
        "funnel_resolved": "回復: キャンペーン {tracker} の失敗率 {rate:.0%}",
        "funnel_lines": ["直近 {window} で {messages} 件中 {failed} 件が失敗 ({rate:.0%})",
                         "主なエラー: {codes}"],
        "stuck": "送信済みのまま未配信: {count} 件({where})",
        "stuck_lines": [
            "{after} 以上「送信済み(sent)」のままで、配信・既読・失敗のどれも届いていません。",
            "考えられる原因: 受信者の端末がオフライン、受信者がビジネスをブロック、"
            "電話番号の変更(WhatsApp の再登録なし)。",
            "Meta は 30 日以内に配信できなかったメッセージを破棄します。",
        ],
        "later_delivered": "うち {n} 件は後から配信済み/既読と報告されました",
        "what": "内容",
        "todo": "対処",
    },
    "en": {
        "funnel": "Campaign {tracker}: {rate:.0%} failed, mostly {code}",
        "funnel_resolved": "Recovered: campaign {tracker} at {rate:.0%} failed",
        "funnel_lines": ["{failed} of {messages} messages failed over the last {window} "
                         "({rate:.0%})", "Top errors: {codes}"],
        "stuck": "Stuck in sent: {count} messages ({where})",
        "stuck_lines": [
            "Sent over {after} ago, and neither delivered, read nor failed since.",
            "Likely causes: the recipient's phone is offline, the recipient blocked the "
            "business, or the recipient changed phone (without moving WhatsApp).",
            "Meta drops messages it could not deliver within 30 days.",
        ],
        "later_delivered": "{n} of {count} later reported delivered or read",
        "what": "What happened",
        "todo": "What to do",
    },
}  # fmt: skip


def item(event: Mapping) -> dict:
    """One entry of a notification's `alerts[]` for a fate event."""
    entry = event.get("catalog") or {}
    return {
        "event_id": event.get("event_id"),
        "kind": event.get("kind"),
        "api": event.get("api"),
        "code": event.get("code"),
        "title": entry.get("title"),
        "category": entry.get("category"),
        "severity": entry.get("severity"),
        "explanation": entry.get("explanation"),
        "action": entry.get("action"),
        "known": entry.get("known"),
        "status": event.get("status"),
        "message_id": event.get("message_id"),
        "phone_number_id": event.get("phone_number_id"),
        "biz_opaque_callback_data": event.get("biz_opaque_callback_data"),
        "fate": dict(event.get("fate") or {}),
        "timestamp": event.get("timestamp"),
    }


def _first(alert: Mapping) -> Mapping:
    return (alert.get("alerts") or [{}])[0]


def _codes(codes: Mapping) -> str:
    return ", ".join(f"{code} ×{count}" for code, count in list(codes.items())[:3]) or "-"


def _where(fate: Mapping, first: Mapping) -> str:
    parts = [f"phone_number_id={first.get('phone_number_id') or '-'}"]
    if first.get("biz_opaque_callback_data"):
        parts.append(f"tracker={first['biz_opaque_callback_data']}")
    return ", ".join(parts)


def title(alert: Mapping, lang: str) -> str:
    """One line: which tracker fails how often, or how many messages are stuck where."""
    words = _WORDS[lang]
    first = _first(alert)
    fate = first.get("fate") or {}
    if first.get("kind") == "funnel":
        key = "funnel_resolved" if alert.get("status") == "resolved" else "funnel"
        text = words[key].format(tracker=fate.get("tracker"), rate=fate.get("rate", 0.0),
                                 code=first.get("code"))  # fmt: skip
    else:
        text = words["stuck"].format(count=alert.get("count"), where=_where(fate, first))
    return f"[wastatus] {text}"


def body(alert: Mapping, lang: str) -> str:
    """A few short lines: the figures, the likely causes, what to do."""
    words = _WORDS[lang]
    first = _first(alert)
    fate = first.get("fate") or {}
    if first.get("kind") == "funnel":
        lines = [line.format(window=fate.get("window"), messages=fate.get("messages"),
                             failed=fate.get("failed"), rate=fate.get("rate", 0.0),
                             codes=_codes(fate.get("codes") or {}))
                 for line in words["funnel_lines"]]  # fmt: skip
        lines.append(f"{words['what']}: {(first.get('explanation') or {}).get(lang, '')}")
        lines.append(f"{words['todo']}: {(first.get('action') or {}).get(lang, '')}")
    else:
        lines = [line.format(after=fate.get("after")) for line in words["stuck_lines"]]
    later = alert.get("later_delivered")
    if later:
        lines.append(words["later_delivered"].format(n=later, count=alert.get("count")))
    lines.append(f"group: {alert.get('group_key')}")
    return "\n".join(lines)


def later_delivered(alert: Mapping, lang: str) -> str:
    """ "1 of 12 later reported delivered" for a failure group, or empty."""
    later = alert.get("later_delivered")
    if not later:
        return ""
    return _WORDS[lang]["later_delivered"].format(n=later, count=alert.get("count"))
