"""The observability benchmark (bench/observability/run.py): the overhead it reports
is the median of interleaved rounds' own differences, with an interval."""

import json
import logging
import statistics
import sys

import pytest

from bench import common
from bench.observability import run as observability
from tenants.observability import metrics


def test_the_overhead_is_the_median_of_the_rounds_differences_with_an_interval(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    access = logging.getLogger("cms.access")  # the benchmark logs to /dev/null
    monkeypatch.setattr(access, "handlers", access.handlers)
    monkeypatch.setattr(access, "propagate", access.propagate)
    labels = metrics.tenant_labels
    monkeypatch.setattr(labels, "_labelled", labels._labelled)
    monkeypatch.setattr(labels, "_refresh_after", labels._refresh_after)
    order = []
    timed_side = observability.per_call_us

    def per_call_us(calls, function):
        order.append(calls)
        return timed_side(calls, function)

    monkeypatch.setattr(observability, "per_call_us", per_call_us)
    monkeypatch.setattr(sys, "argv", ["run.py", "-n", "30", "--rounds", "3"])

    assert observability.main() == 0

    (record,) = (tmp_path / "observability").glob("*.json")
    saved = json.loads(record.read_text())
    by_round = saved["figures"]["us_by_round"]
    assert len(by_round["bare"]) == len(by_round["observed"]) == 3
    observed, bare = by_round["observed"], by_round["bare"]
    rounds = [o - b for o, b in zip(observed, bare, strict=True)]
    overhead = saved["figures"]["overhead_us"]
    assert overhead["median"] == saved["result"]["observation_overhead_us"]
    assert overhead["median"] == statistics.median(rounds)
    assert overhead["ci_low"] <= overhead["median"] <= overhead["ci_high"]
    assert saved["result"]["observation_overhead_us_ci_low"] == overhead["ci_low"]
    assert saved["result"]["observation_overhead_us_ci_high"] == overhead["ci_high"]
    assert overhead["median"] > 0  # observing a request costs something
    printed = capsys.readouterr().out
    assert "overhead: median of rounds (95 % interval)" in printed
    assert printed.splitlines()[-1].startswith("RESULT observation_overhead_us=")
    # six timed sides of 30 calls, then the parts on their own
    assert order[:6] == [30] * 6


def test_an_interval_needs_two_rounds(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["run.py", "--rounds", "1"])
    with pytest.raises(SystemExit) as exit_:
        observability.main()
    assert exit_.value.code == 2
    assert "--rounds >= 2" in capsys.readouterr().err
