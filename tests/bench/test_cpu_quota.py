"""The CPU quotas shared_vs_isolated puts its pools in: isolated compute is a slice of
the machine, and the benchmark's comparison rests on each pool really being held to
its slice."""

import argparse
import os
import resource
import subprocess
import sys

import pytest

from bench import common
from bench.shared_vs_isolated import cpu_quota


@pytest.fixture
def quota():
    made = cpu_quota.cpu_quota(f"bench-test-{os.getpid()}", 0.1)
    yield made
    made.remove()


def test_a_child_and_its_children_run_in_the_quota_and_are_held_to_it(quota):
    # a child that forks a grandchild (as gunicorn's master forks its workers), both
    # spinning for a second of wall time
    spin = (
        "import os, time\n"
        "os.fork()\n"
        "end = time.monotonic() + 1.0\n"
        "while time.monotonic() < end: pass\n"
    )
    throttled_before = quota.throttled_seconds()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = subprocess.Popen(
        [sys.executable, "-c", f"import time; time.sleep(0.3)\n{spin}"],
        preexec_fn=quota.enter,
    )
    try:
        assert quota.holds(child.pid)
        assert not quota.holds(os.getpid())
    finally:
        child.wait(timeout=30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    # unlimited, the child alone would have used about a second of CPU; a tenth of
    # a core for ~1.3 s is ~0.13 s (the grandchild's time is not the child's)
    assert cpu < 0.5
    assert quota.throttled_seconds() > throttled_before


def test_the_quota_is_the_share_of_a_period(quota):
    if quota.version == 1:
        assert (quota.path / "cpu.cfs_quota_us").read_text().strip() == "10000"
        assert (quota.path / "cpu.cfs_period_us").read_text().strip() == "100000"
    else:
        assert (quota.path / "cpu.max").read_text().split() == ["10000", "100000"]


def test_a_quota_is_removed_once_its_processes_are_gone():
    made = cpu_quota.cpu_quota(f"bench-test-gone-{os.getpid()}", 0.5)
    subprocess.run([sys.executable, "-c", "pass"], preexec_fn=made.enter, check=True)
    made.remove()
    assert not made.path.exists()
    made.remove()  # twice is harmless


def test_no_quota_without_a_cpu_controller_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(cpu_quota, "CGROUP_ROOT", tmp_path)
    with pytest.raises(cpu_quota.QuotaUnavailable, match="no cgroup CPU controller"):
        cpu_quota.cpu_quota("nothing", 0.25)
    with pytest.raises(ValueError, match="cores above 0"):
        cpu_quota.cpu_quota("nothing", 0)


def test_one_isolated_worker_meeting_the_target_at_the_spike_invalidates_the_run():
    """The chain of 2026-12-03 19:11: one worker measured at 31/s, spike 39/s; then
    one worker per isolated pool met the 250-ms target at 39/s in the cost claim, so
    there had been no spike beyond one worker."""
    from bench.shared_vs_isolated.run import check_spike_premise

    args = argparse.Namespace(slo_ms=250)
    run = common.Run("shared_vs_isolated", argparse.ArgumentParser(), args)
    assert check_spike_premise(args, run, {"shared": 2, "isolated": 2}, 39.2)
    assert check_spike_premise(args, run, {"shared": 2, "isolated": None}, 39.2)
    assert run.valid
    assert not check_spike_premise(args, run, {"shared": 1, "isolated": 1}, 39.2)
    assert not run.valid and "within one worker's capacity" in run.problems[0]
