"""The webhooks benchmark's table (bench/webhooks/run.py): each step's ratio to idle
is printed with a 95 % bootstrap interval over its samples."""

import math

from bench.webhooks import run as webhooks


def test_each_ratio_to_idle_has_an_interval_and_a_single_sample_has_none(capsys):
    idle = [0.10, 0.09, 0.11, 0.10, 0.12, 0.10, 0.09]
    fair = [0.12, 0.13, 0.11, 0.14, 0.30, 0.12, 0.13]

    intervals = webhooks.print_steps(
        (("idle", idle, True), ("FIFO", [90.0], False), ("fair", fair, True))
    )

    ratio, low, high = intervals["fair"]
    assert math.isclose(ratio, 0.13 / 0.10)  # of the medians
    assert low < ratio < high and high < 0.30 / 0.09  # the outlier is one of seven
    assert math.isnan(intervals["FIFO"][1]) and math.isnan(intervals["idle"][1])
    printed = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in printed}
    assert rows["fair"][1:3] == ["0.130", "1.30"]
    assert rows["fair"][3] == f"{low:.2f}-{high:.2f}"
    assert rows["FIFO"][1:4] == [">=90.000", ">=900.00", "n/a"]  # a lower bound
    assert rows["idle"][3] == "n/a"
