"""The Usage page's chart: dated axis, round scale, legend, each day's figures."""

import datetime as dt
import re

import pytest

from tenants.metering.chart import daily_requests_svg, nice_scale
from tenants.metering.reports import UsageRow

ZERO = {
    "public_reads": 0,
    "api_reads": 0,
    "api_writes": 0,
    "publish_jobs": 0,
    "rejected_429": 0,
    "rejected_503": 0,
}


def rows(values: list[tuple[int, int]]) -> list[UsageRow]:
    start = dt.date(2026, 11, 2)
    return [
        UsageRow(
            day=start + dt.timedelta(days=index),
            counts={
                **ZERO,
                "public_reads": served - 2 if served >= 2 else served,
                "api_reads": 2 if served >= 2 else 0,
                "rejected_429": refused,
            },
        )
        for index, (served, refused) in enumerate(values)
    ]


@pytest.mark.parametrize(
    ("peak", "step", "top"),
    [(1, 1, 1), (7, 2, 8), (97, 50, 100), (1234, 500, 1500), (0, 1, 1)],
)
def test_the_scale_is_round(peak, step, top):
    assert nice_scale(peak) == (step, top)


def test_the_chart_has_dates_scale_legend_and_hover_values():
    data = [(index * 10, index % 3) for index in range(30)]
    svg = str(daily_requests_svg(rows(data)))

    # dated x axis: evenly spaced days up to the last, as "01 Dec"
    dates = re.findall(r'<text class="date"[^>]*>([^<]+)</text>', svg)
    assert dates == ["03 Nov", "07 Nov", "11 Nov", "15 Nov", "19 Nov", "23 Nov",
                     "27 Nov", "01 Dec"]  # fmt: skip
    # scale: round steps from 0 to the top (peak 290 + 2 refused)
    assert re.findall(r'<text class="scale"[^>]*>([^<]+)</text>', svg) == [
        "0",
        "100",
        "200",
        "300",
    ]
    # legend naming both colours
    assert "Requests served" in svg and "Refused (429" in svg
    # each day: a tooltip with its figures and its total shown on hover
    day = re.search(r'<g class="day" data-day="2026-11-07">(.*?)</g>', svg).group(1)
    assert "<title>2026-11-07: 50 requests (48 page reads, 2 API reads, " in day
    assert "2 refused (Saturday)</title>" in day
    assert '<text class="value"' in day and ">52</text>" in day
    assert ".day:hover .value{visibility:visible}" in svg
    # bar heights follow the scale: day 29 (290 + 2) is 292/300 of the plot
    last = re.search(r'<g class="day" data-day="2026-12-01">(.*?)</g>', svg).group(1)
    served_h = float(re.search(r'class="served"[^>]*height="([\d.]+)"', last).group(1))
    assert served_h == pytest.approx(158 * 290 / 300, abs=0.2)


def test_an_empty_period_still_draws_an_axis():
    svg = str(daily_requests_svg(rows([(0, 0)] * 30)))
    assert re.findall(r'<text class="scale"[^>]*>([^<]+)</text>', svg) == ["0", "1"]
