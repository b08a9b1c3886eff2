"""Celery workers run below the web pool's CPU priority (``CMS_WORKER_NICE``)."""

import os
from pathlib import Path

import pytest

from tests.cms_project.test_settings import _manage
from tests.integration import start_celery_worker, stop_process, wait_for


def _nice(pid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, pid)


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in children.read_text().split()]


def _pool_of_two(pid: int) -> list[int] | None:
    children = _children(pid)
    return children if len(children) >= 2 else None


def test_a_worker_and_every_process_of_its_pool_yield_the_cpu(
    django_db_setup, tmp_path
):
    expected = max(_nice(0), 10)  # never lowered below what it was started with
    worker = start_celery_worker(tmp_path / "worker.log", concurrency=2)
    try:
        children = wait_for(
            lambda: _pool_of_two(worker.pid),
            timeout=60,
            what="the worker's pool of two processes",
        )

        assert _nice(worker.pid) == expected
        assert [_nice(child) for child in children] == [expected, expected]
    finally:
        stop_process(worker)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("high", "CMS_WORKER_NICE must be a whole number, not 'high'."),
        ("20", "CMS_WORKER_NICE must be from 0 to 19, not 20."),
        ("-5", "CMS_WORKER_NICE must be from 0 to 19, not -5."),
    ],
)
def test_a_nice_value_out_of_range_stops_the_start_with_a_clear_message(value, message):
    result = _manage("check", CMS_WORKER_NICE=value)

    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
