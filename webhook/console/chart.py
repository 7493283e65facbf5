"""The overview's chart: failures per hour stacked by category, as inline SVG made here
(no script, no CDN: it renders wherever the page does, phones and screenshots included)."""

from __future__ import annotations

from markupsafe import Markup, escape

COLOURS = (
    "#d62728",
    "#ff7f0e",
    "#1f77b4",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 220, 40, 24, 8


def svg(chart: dict) -> Markup:
    """A stacked bar per hour, one colour per category, a legend of the categories seen."""
    hours = chart["hours"]
    categories = chart["categories"]
    colour = {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(categories)}
    peak = max([sum(row["by_category"].values()) for row in hours] + [1])
    plot = HEIGHT - BOTTOM - TOP
    step = (WIDTH - LEFT) / max(len(hours), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT + 24}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="failures by hour">',
        f'<text x="0" y="{TOP + 10}" font-size="11">{peak}</text>',
        f'<text x="0" y="{HEIGHT - BOTTOM}" font-size="11">0</text>',
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH}" y2="{HEIGHT - BOTTOM}" '
        'stroke="#999"/>',
    ]
    seen: list[str] = []
    for index, row in enumerate(hours):
        x = LEFT + index * step + 2
        y = HEIGHT - BOTTOM
        for name in categories:
            count = row["by_category"].get(name, 0)
            if not count:
                continue
            if name not in seen:
                seen.append(name)
            height = plot * count / peak
            y -= height
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{step - 4:.1f}" '
                f'height="{height:.1f}" fill="{colour[name]}">'
                f"<title>{escape(name)}: {count}</title></rect>"
            )
        label = row["hour"][11:13] if row["hour"] else ""
        parts.append(
            f'<text x="{x + step / 2 - 6:.1f}" y="{HEIGHT - 8}" font-size="11">'
            f"{escape(label)}</text>"
        )
    for index, name in enumerate(seen):
        x = LEFT + index * 130
        parts.append(
            f'<rect x="{x}" y="{HEIGHT + 6}" width="10" height="10" '
            f'fill="{colour[name]}"/><text x="{x + 14}" y="{HEIGHT + 15}" '
            f'font-size="11">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
