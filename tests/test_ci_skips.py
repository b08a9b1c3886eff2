"""Under CI=true a test that cannot run fails; elsewhere it skips with its reason."""

import os
import subprocess
import sys
import textwrap

import pytest

from tests.integration import REPO_ROOT

SKIPPING_TESTS = textwrap.dedent(
    """
    import pytest

    from tests.ci_plugin import tool_unavailable


    @pytest.fixture(scope="session")
    def pgbouncer():
        tool_unavailable("the pooler test needs pgbouncer: apt-get failed")


    def test_needs_a_tool(pgbouncer):
        pass


    def test_skips_itself():
        pytest.skip("not today")


    @pytest.mark.skipif(True, reason="marked")
    def test_marked():
        pass


    @pytest.mark.xfail(reason="known bug", strict=True)
    def test_expected_failure():
        assert False


    def test_runs():
        pass
    """
)


def _pytest_run(tmp_path, *, ci: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_tools.py").write_text(SKIPPING_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "tests.ci_plugin",
            "-p", "no:django", "-p", "no:cacheprovider", "-rA", "test_tools.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_outside_ci_a_missing_tool_skips_with_its_reason(tmp_path, ci):
    result = _pytest_run(tmp_path, ci=ci)

    assert result.returncode == 0, result.stdout
    assert "1 passed, 3 skipped, 1 xfailed" in result.stdout
    assert "the pooler test needs pgbouncer: apt-get failed" in result.stdout


@pytest.mark.parametrize("ci", ["true", "1"])
def test_under_ci_every_skip_fails_with_its_reason(tmp_path, ci):
    result = _pytest_run(tmp_path, ci=ci)

    assert result.returncode == 1, result.stdout
    # a skip in setup (fixture, skipif marker) becomes an error, in the test a failure
    assert "1 failed, 1 passed, 1 xfailed, 2 errors" in result.stdout
    assert (
        "the pooler test needs pgbouncer: apt-get failed "
        "(CI=true allows no skipped test)"
    ) in result.stdout
    assert "skipped (not today), but CI=true allows no skipped test" in result.stdout
    assert "skipped (marked), but CI=true allows no skipped test" in result.stdout
