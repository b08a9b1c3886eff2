"""The generated tests' profiles: fixed examples locally; under CI=true random ones,
more of them, and a failure that prints how to replay it."""

import os
import subprocess
import sys
import textwrap

import pytest

from tests.integration import REPO_ROOT

PROPERTY = textwrap.dedent(
    """
    from hypothesis import given, settings, strategies as st

    from tests.generated import examples, load_profile

    PROFILE = load_profile()


    def test_profile():
        print(f"profile={PROFILE} examples(12)={examples(12)} "
              f"derandomize={settings.default.derandomize}")


    @settings(max_examples=examples(50))
    @given(st.integers())
    def test_small_numbers(number):
        assert number < 1000
    """
)


def _run(tmp_path, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_property.py").write_text(PROPERTY)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    environment = {
        k: v for k, v in os.environ.items() if k not in {"CI", "HYPOTHESIS_PROFILE"}
    }
    environment |= {"PYTHONPATH": str(REPO_ROOT), **env}
    return subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "no:django", "-p", "no:cacheprovider",
            "-s", "test_property.py",
        ],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip


def test_locally_examples_are_fixed(tmp_path):
    result = _run(tmp_path)

    assert "profile=cms examples(12)=12 derandomize=True" in result.stdout
    assert result.returncode == 1
    assert "Failing test case: test_small_numbers(" in result.stdout
    assert "@reproduce_failure" not in result.stdout


@pytest.mark.parametrize("env", [{"CI": "true"}, {"HYPOTHESIS_PROFILE": "ci"}])
def test_in_ci_examples_are_random_more_and_a_failure_prints_its_blob(tmp_path, env):
    result = _run(tmp_path, **env)

    assert "profile=ci examples(12)=36 derandomize=False" in result.stdout
    assert result.returncode == 1
    assert "Failing test case: test_small_numbers(" in result.stdout
    assert "@reproduce_failure(" in result.stdout
