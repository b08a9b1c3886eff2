"""A small server-rendered SVG bar chart of daily requests (no JavaScript, no CDN)."""

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString

from tenants.metering.reports import UsageRow

WIDTH = 720
HEIGHT = 180
MARGIN_BOTTOM = 20
MARGIN_LEFT = 48


def requests_of(row: UsageRow) -> int:
    counts = row.counts
    return counts["public_reads"] + counts["api_reads"] + counts["api_writes"]


def daily_requests_svg(rows: list[UsageRow]) -> SafeString:
    """Bars of requests per day, refused requests (429 + 503) stacked in red; each
    bar has a tooltip with the day's figures."""
    peak = max(
        [
            requests_of(r) + r.counts["rejected_429"] + r.counts["rejected_503"]
            for r in rows
        ]
        + [1]
    )
    plot_height = HEIGHT - MARGIN_BOTTOM - 10
    slot = (WIDTH - MARGIN_LEFT) / max(len(rows), 1)
    bars = []
    for index, row in enumerate(rows):
        served = requests_of(row)
        refused = row.counts["rejected_429"] + row.counts["rejected_503"]
        x = MARGIN_LEFT + index * slot + 1
        served_h = plot_height * served / peak
        refused_h = plot_height * refused / peak
        base = HEIGHT - MARGIN_BOTTOM
        title = f"{row.day.isoformat()}: {served:,} requests, {refused:,} refused"
        bars.append(
            (
                escape(title),
                f"{x:.1f}",
                f"{base - served_h:.1f}",
                f"{max(slot - 2, 1):.1f}",
                f"{served_h:.1f}",
                f"{base - served_h - refused_h:.1f}",
                f"{refused_h:.1f}",
            )
        )
    body = format_html_join(
        "",
        '<g><title>{}</title><rect class="served" x="{}" y="{}" width="{}" '
        'height="{}" fill="#2e7d9a"></rect><rect class="refused" x="{}" y="{}" '
        'width="{}" height="{}" fill="#cd4444"></rect></g>',
        ((title, x, y, w, h, x, ry, w, rh) for title, x, y, w, h, ry, rh in bars),
    )
    first = rows[0].day.isoformat() if rows else ""
    last = rows[-1].day.isoformat() if rows else ""
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="usage-chart" role="img" '
        'viewBox="0 0 {w} {h}" width="100%" aria-label="Requests per day, {first} '
        'to {last}">'
        '<text x="0" y="12" font-size="11">{peak}</text>'
        '<text x="0" y="{base}" font-size="11">0</text>'
        '<line x1="{left}" y1="{base}" x2="{w}" y2="{base}" stroke="#999"></line>'
        "{body}"
        '<text x="{left}" y="{h}" font-size="11">{first}</text>'
        '<text x="{w}" y="{h}" font-size="11" text-anchor="end">{last}</text>'
        "</svg>",
        w=WIDTH,
        h=HEIGHT,
        first=first,
        last=last,
        peak=f"{peak:,}",
        base=HEIGHT - MARGIN_BOTTOM,
        left=MARGIN_LEFT,
        body=body,
    )
