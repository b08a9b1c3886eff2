"""Skips under CI: a CI run that skipped the browser or pooler tests proved nothing.

Outside CI a test whose tool (Chromium, pgbouncer) is missing and cannot be installed
skips with the reason, so a machine without root still runs the rest of the suite.
Under ``CI=true`` it fails with that reason instead, and so does any other skip
(a ``pytest.skip``, a ``skipif`` marker, an ``importorskip``): the project allows no
skipped tests, and CI is where that is enforced. Loaded by ``tests/conftest.py``.
"""

import os
from typing import NoReturn

import pytest

CI_SKIP_RULE = "CI=true allows no skipped test"


def running_in_ci() -> bool:
    """Whether the CI runner set ``CI`` (it sets ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def tool_unavailable(reason: str) -> NoReturn:
    """A tool the test needs is missing and cannot be installed: skip, or under CI
    fail, with ``reason`` (say what is missing and why it could not be installed)."""
    if running_in_ci():
        pytest.fail(f"{reason} ({CI_SKIP_RULE})", pytrace=False)
    pytest.skip(reason)


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_skip_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    if running_in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped ({_skip_reason(report)}), but {CI_SKIP_RULE}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())
