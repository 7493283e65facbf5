"""How funnels and failed recipients are shown to people, by the CLI and the console alike:
a row's top failure codes in a few characters, and a tracker's failed recipients as CSV with
numbers masked unless `WASTATUS_LOG_PII`."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping

from workers.logs import mask_phone

CSV_FIELDS = ("received_at", "message_id", "recipient_id", "phone_number_id", "code", "title")


def top_codes(codes: Mapping[str, int], shown: int = 2) -> str:
    """`131049×3, 131026×1`: the `shown` most frequent codes of a funnel row (already sorted)."""
    return ", ".join(f"{code}×{count}" for code, count in list(codes.items())[:shown])


def failed_rows(
    entries: Iterable[Mapping], show_pii: bool, when: Callable[[float | None], str]
) -> list[dict]:
    """The CSV rows of failed recipients: the recipient masked unless `show_pii`, the arrival
    time written by `when`."""
    rows = []
    for entry in entries:
        recipient = entry.get("recipient_id")
        if recipient and not show_pii:
            recipient = mask_phone(recipient)
        row = {key: entry.get(key) for key in CSV_FIELDS}
        rows.append(row | {"recipient_id": recipient, "received_at": when(row["received_at"])})
    return rows


def failed_csv(
    entries: Iterable[Mapping], show_pii: bool, when: Callable[[float | None], str]
) -> str:
    """Failed recipients as CSV text with a header line (see `failed_rows`)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(failed_rows(entries, show_pii, when))
    return out.getvalue()
