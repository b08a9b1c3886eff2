"""The offline audit: the lock's pins against the PyPA advisory snapshot, never a pass
having checked nothing (``python -m cms_project.advisories``, run by ``make audit``)."""

import subprocess
import sys

import pytest

from cms_project.advisories import default_snapshot
from tests.integration import REPO_ROOT, free_port

SNAPSHOT = default_snapshot()
SNAPSHOT_DATE = "2024-10-10"


@pytest.fixture(scope="module")
def snapshot() -> str:
    if not (SNAPSHOT / "vulns").is_dir():
        pytest.fail(
            f"the advisory snapshot is missing at {SNAPSHOT}: set CMS_ADVISORY_DB to "
            f"the shared advisory-db folder"
        )
    return str(SNAPSHOT)


def _audit(lock, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cms_project.advisories", str(lock), *options],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_vulnerable_pin_is_flagged(tmp_path, snapshot):
    # PYSEC-2018-55: CRLF injection in gunicorn's headers, fixed in 19.5.0
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "gunicorn==19.4.5\n    # via tenantcms\n"
        "pyyaml==6.0.4 \\\n    --hash=sha256:0123\n"
    )

    result = _audit(lock, "--snapshot", snapshot)

    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        f"SNAPSHOT of the PyPA advisory database dated {SNAPSHOT_DATE}" in result.stdout
    )
    assert "Checked 2 pinned packages of requirements.lock" in result.stdout
    assert (
        "gunicorn==19.4.5: PYSEC-2018-55 (CVE-2018-1000164, GHSA-32pc-xphx-q4f6); "
        "fixed in 19.5.0." in result.stdout
    )
    assert "pyyaml" not in result.stdout


def test_the_fixed_version_is_not_flagged_by_that_advisory(tmp_path, snapshot):
    lock = tmp_path / "requirements.lock"
    lock.write_text("gunicorn==19.5.0\n")

    result = _audit(lock, "--snapshot", snapshot)

    assert "Checked 1 pinned packages" in result.stdout, result.stderr
    assert "PYSEC-2018-55" not in result.stdout


def test_ranges_with_several_branches_flag_only_the_affected_ones(tmp_path, snapshot):
    # PYSEC-2020-35 (Django StringAgg): 1.11 before 1.11.28, 2.2 before 2.2.10, 3.0
    # before 3.0.3
    lock = tmp_path / "requirements.lock"
    lock.write_text("Django==3.0.2\n")
    fixed = tmp_path / "fixed.lock"
    fixed.write_text("django==3.0.3\n")

    assert (
        "django==3.0.2: PYSEC-2020-35 " in _audit(lock, "--snapshot", snapshot).stdout
    )
    assert "PYSEC-2020-35" not in _audit(fixed, "--snapshot", snapshot).stdout


def test_a_lock_without_pins_fails_having_checked_nothing(tmp_path, snapshot):
    lock = tmp_path / "requirements.lock"
    lock.write_text("# nothing pinned\n-r other.txt\ndjango>=5\n")

    result = _audit(lock, "--snapshot", snapshot)

    assert result.returncode == 2
    assert result.stdout == (
        f"audit FAILED, nothing was checked: no pinned package (name==version) in "
        f"{lock}\n"
    )


def test_a_missing_snapshot_fails_having_checked_nothing(tmp_path):
    missing = tmp_path / "advisory-db"

    result = _audit(REPO_ROOT / "requirements.lock", "--snapshot", str(missing))

    assert result.returncode == 2
    assert result.stdout == (
        f"audit FAILED, nothing was checked: no advisory snapshot at {missing} "
        f"(no {missing}/vulns/*/*.yaml)\n"
    )


def test_the_project_lock_has_no_known_vulnerability_in_the_snapshot(snapshot):
    # no --snapshot: the default location, as `make audit` uses it
    result = _audit(REPO_ROOT / "requirements.lock")

    # the report itself, shown whenever this fails
    assert result.returncode == 0, result.stdout + result.stderr
    pins = sum(
        1
        for line in (REPO_ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    )
    assert f"Checked {pins} pinned packages of requirements.lock against" in (
        result.stdout
    )
    assert (
        f"No known vulnerability in the pinned versions (as of {SNAPSHOT_DATE})."
        in result.stdout
    )


@pytest.fixture
def fake_pypi(monkeypatch):
    """A local stand-in for PyPI's JSON API that knows only amqp 5.4.2."""
    import http.server
    import json
    import threading

    from cms_project import advisories

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/pypi/amqp/5.4.2/json":
                body = json.dumps({"info": {}, "vulnerabilities": []}).encode()
                self.send_response(200)
            else:
                body = b"{}"
                self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(
        advisories,
        "LIVE_SERVICE_URL",
        f"http://127.0.0.1:{server.server_port}/pypi/{{name}}/{{version}}/json",
    )
    yield
    server.shutdown()
    server.server_close()


def test_the_live_service_is_used_when_it_answers_for_a_pin(tmp_path, fake_pypi):
    from cms_project.advisories import live_service_answers

    known, unknown = tmp_path / "known.lock", tmp_path / "unknown.lock"
    known.write_text("amqp==5.4.2\n")
    unknown.write_text("amqp==9.9.9\n")

    assert live_service_answers(lock=known)[0] is True
    answers, why = live_service_answers(lock=unknown)
    assert answers is False
    assert "HTTP Error 404" in why
