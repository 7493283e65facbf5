"""Cloud API status webhooks for the funnel, timeline and stuck-message tests."""

from __future__ import annotations

PHONE = "200000000000002"


def alerts_to(receiver, monkeypatch, **settings: str):
    """Alerts go to `receiver`'s `/alerts` only, sent without a group wait; `settings` are
    more WASTATUS_ variables (`TRACK_MESSAGES="72h"` sets WASTATUS_TRACK_MESSAGES)."""
    monkeypatch.setenv("WASTATUS_ALERT_WEBHOOK_URL", receiver.url + "/alerts")
    for name in ("WASTATUS_ALERT_WEBHOOK_SECRET", "WASTATUS_ALERT_URLS", "WASTATUS_RULES",
                 "WASTATUS_ALERTMANAGER_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WASTATUS_GROUP_WAIT", "0")
    for name, value in settings.items():
        monkeypatch.setenv("WASTATUS_" + name, value)
    return receiver


def status(
    wamid: str,
    name: str,
    timestamp: int = 1_700_000_000,
    tracker: str | None = None,
    code: int | None = None,
    recipient: str = "818000000010",
    pricing: dict | None = None,
) -> dict:
    """One status as Meta sends it; a failed one carries error `code`."""
    found = {"id": wamid, "status": name, "timestamp": str(timestamp), "recipient_id": recipient}
    if tracker is not None:
        found["biz_opaque_callback_data"] = tracker
    if code is not None:
        found["errors"] = [{"code": code, "title": f"error {code}"}]
    if pricing is not None:
        found["pricing"] = pricing
        found["conversation"] = {"id": "c1", "origin": {"type": pricing.get("category")}}
    return found


def body(*statuses: dict, phone: str = PHONE) -> dict:
    """A Cloud API webhook carrying `statuses` for phone number id `phone`."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "81300000000", "phone_number_id": phone},
        "statuses": list(statuses),
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "100000000000001", "changes": [{"field": "messages", "value": value}]}],
    }
