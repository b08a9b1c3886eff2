"""The publish fairness benchmark's throughput ratio (bench/publish_fairness/run.py):
fair's pages per second over FIFO's, each round on its own."""

import pytest

from bench.publish_fairness import run as publish_fairness


def _step(jobs: int, seconds: float) -> dict:
    return {"b_s": 1.0, "c_s": 1.0, "jobs": jobs, "seconds": seconds}


def test_the_throughput_ratio_is_fair_over_fifo_in_each_round():
    steps = {
        # round 1: fair 10 pages/s, FIFO 20; round 2: both 5
        "fair": [_step(100, 10.0), _step(100, 20.0)],
        "fifo": [_step(100, 5.0), _step(100, 20.0)],
    }

    # inverted it would be [2.0, 1.0]; pooled over the rounds 200/30 over 200/25
    assert publish_fairness.throughput_ratios(steps) == [0.5, 1.0]


def test_a_round_without_its_fifo_step_is_an_error_not_a_shorter_list():
    steps = {"fair": [_step(100, 10.0), _step(100, 20.0)], "fifo": [_step(100, 5.0)]}

    with pytest.raises(ValueError):
        publish_fairness.throughput_ratios(steps)
