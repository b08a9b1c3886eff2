"""Every benchmark's script loads and parses its arguments: `make bench` runs each
as a script, so an import or annotation error shows only there, an hour into a
chain, unless it is caught here."""

import subprocess
import sys

import pytest

from bench import report
from bench.common import REPO


@pytest.mark.parametrize("name", report.BENCHMARKS)
def test_each_benchmark_script_loads_and_answers_help(name):
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / name / "run.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
