"""A server-rendered SVG bar chart of daily requests (no JavaScript, no CDN).

What a reader needs to read it without help: a dated x axis, a y axis with a round
scale and grid lines, a legend, and each day's figures on hover (a tooltip from the
``<title>`` element, and the day's total shown above its bar while the pointer is on
it, by CSS alone).
"""

import math

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from tenants.metering.reports import UsageRow

WIDTH = 720
HEIGHT = 220
MARGIN_TOP = 28  # the legend
MARGIN_BOTTOM = 34  # date labels
MARGIN_LEFT = 56  # scale labels
MARGIN_RIGHT = 8
SERVED_COLOUR = "#2e7d9a"
REFUSED_COLOUR = "#cd4444"
# How many dates the x axis names at most (evenly spaced, the last day always).
MAX_DATE_LABELS = 8

STYLE = (
    ".usage-chart text{font-family:sans-serif;font-size:11px;fill:#333}"
    ".usage-chart .value{visibility:hidden;font-weight:bold}"
    ".usage-chart .day:hover .value{visibility:visible}"
    ".usage-chart .day:hover .hit{fill:#000;fill-opacity:.06}"
)


def requests_of(row: UsageRow) -> int:
    counts = row.counts
    return counts["public_reads"] + counts["api_reads"] + counts["api_writes"]


def refused_of(row: UsageRow) -> int:
    return row.counts["rejected_429"] + row.counts["rejected_503"]


def nice_scale(peak: int, *, ticks: int = 4) -> tuple[int, int]:
    """A round step (1, 2 or 5 times a power of ten) and the axis top it reaches, so
    the grid lines fall on numbers a reader can use."""
    raw = max(peak, 1) / ticks
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(int(step), 1)
    return step, step * math.ceil(max(peak, 1) / step)


def _compact(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 10_000:
        return f"{value / 1_000:g}k"
    return f"{value:,}"


def daily_requests_svg(rows: list[UsageRow]) -> SafeString:
    """Bars of requests per day with refused requests (429 + 503) stacked in red."""
    peak = max([requests_of(r) + refused_of(r) for r in rows] + [1])
    step, top = nice_scale(peak)
    base = HEIGHT - MARGIN_BOTTOM
    plot_height = base - MARGIN_TOP
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    slot = plot_width / max(len(rows), 1)

    def y(value: int) -> float:
        return base - plot_height * value / top

    grid = mark_safe(
        "".join(
            format_html(
                '<line x1="{left}" y1="{y}" x2="{right}" y2="{y}" stroke="#ddd">'
                '</line><text class="scale" x="{label_x}" y="{label_y}" '
                'text-anchor="end">{label}</text>',
                left=MARGIN_LEFT,
                right=WIDTH - MARGIN_RIGHT,
                y=f"{y(value):.1f}",
                label_x=MARGIN_LEFT - 6,
                label_y=f"{y(value) + 4:.1f}",
                label=_compact(value),
            )
            for value in range(0, top + 1, step)
        )
    )

    every = max(1, math.ceil(len(rows) / MAX_DATE_LABELS))
    days = []
    for index, row in enumerate(rows):
        served, refused = requests_of(row), refused_of(row)
        x = MARGIN_LEFT + index * slot
        served_h = plot_height * served / top
        refused_h = plot_height * refused / top
        counts = row.counts
        title = (
            f"{row.day.isoformat()}: {served:,} requests "
            f"({counts['public_reads']:,} page reads, {counts['api_reads']:,} API "
            f"reads, {counts['api_writes']:,} API writes), {refused:,} refused "
            f"({row.day:%A})"
        )
        label = ""
        # counted back from the last day, which is always named
        if (len(rows) - 1 - index) % every == 0:
            label = format_html(
                '<line x1="{x}" y1="{base}" x2="{x}" y2="{tick}" stroke="#999"></line>'
                '<text class="date" x="{x}" y="{text_y}" text-anchor="middle">'
                "{text}</text>",
                x=f"{x + slot / 2:.1f}",
                base=base,
                tick=base + 4,
                text_y=base + 16,
                text=f"{row.day:%d %b}",
            )
        days.append(
            format_html(
                '<g class="day" data-day="{day}"><title>{title}</title>'
                '<rect class="hit" x="{x}" y="{top}" width="{slot}" height="{full}" '
                'fill="transparent"></rect>'
                '<rect class="served" x="{bar_x}" y="{served_y}" width="{bar_w}" '
                'height="{served_h}" fill="{served_colour}"></rect>'
                '<rect class="refused" x="{bar_x}" y="{refused_y}" width="{bar_w}" '
                'height="{refused_h}" fill="{refused_colour}"></rect>'
                '<text class="value" x="{mid}" y="{value_y}" text-anchor="middle">'
                "{total}</text>{label}</g>",
                day=row.day.isoformat(),
                title=title,
                x=f"{x:.1f}",
                top=MARGIN_TOP,
                slot=f"{slot:.1f}",
                full=f"{plot_height:.1f}",
                bar_x=f"{x + 1:.1f}",
                bar_w=f"{max(slot - 2, 1):.1f}",
                served_y=f"{base - served_h:.1f}",
                served_h=f"{served_h:.1f}",
                refused_y=f"{base - served_h - refused_h:.1f}",
                refused_h=f"{refused_h:.1f}",
                served_colour=SERVED_COLOUR,
                refused_colour=REFUSED_COLOUR,
                mid=f"{x + slot / 2:.1f}",
                value_y=f"{max(base - served_h - refused_h - 4, MARGIN_TOP + 10):.1f}",
                total=f"{served + refused:,}",
                label=label,
            )
        )

    first = rows[0].day.isoformat() if rows else ""
    last = rows[-1].day.isoformat() if rows else ""
    legend = format_html(
        '<g class="legend">'
        '<rect x="{left}" y="6" width="12" height="12" fill="{served}"></rect>'
        '<text x="{served_text}" y="16">Requests served (page reads, API)</text>'
        '<rect x="{refused_x}" y="6" width="12" height="12" fill="{refused}"></rect>'
        '<text x="{refused_text}" y="16">Refused (429 over the rate, 503 busy)'
        "</text>"
        '<text x="{right}" y="16" text-anchor="end">requests per day (UTC)</text>'
        "</g>",
        left=MARGIN_LEFT,
        served=SERVED_COLOUR,
        served_text=MARGIN_LEFT + 16,
        refused_x=MARGIN_LEFT + 230,
        refused=REFUSED_COLOUR,
        refused_text=MARGIN_LEFT + 246,
        right=WIDTH - MARGIN_RIGHT,
    )
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="usage-chart" role="img" '
        'viewBox="0 0 {w} {h}" width="100%" aria-label="Requests per day, {first} '
        'to {last}; scale 0 to {top}"><style>{style}</style>{legend}{grid}'
        '<line x1="{left}" y1="{base}" x2="{right}" y2="{base}" stroke="#666"></line>'
        '<line x1="{left}" y1="{plot_top}" x2="{left}" y2="{base}" stroke="#666">'
        "</line>{days}</svg>",
        w=WIDTH,
        h=HEIGHT,
        first=first,
        last=last,
        top=f"{top:,}",
        style=mark_safe(STYLE),
        legend=legend,
        grid=grid,
        left=MARGIN_LEFT,
        right=WIDTH - MARGIN_RIGHT,
        base=base,
        plot_top=MARGIN_TOP,
        days=mark_safe("".join(days)),
    )
