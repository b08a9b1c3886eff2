"""Production settings are deployable; the public host never touches tenant tables."""

import subprocess
import sys

import pytest

from tests.integration import REPO_ROOT, process_env


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=process_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db
def test_production_settings_pass_check_deploy():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SETTINGS_MODULE="cms_project.settings.production",
        SECRET_KEY="a-long-random-production-secret-" + "x7Kq" * 10,
        ALLOWED_HOSTS=".example.com",
    )

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db
def test_production_settings_refuse_to_start_without_secret_key():
    result = _manage(
        "check",
        DJANGO_SETTINGS_MODULE="cms_project.settings.production",
        SECRET_KEY="",
    )

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/no-such-page/", "/admin/"])
def test_public_host_never_errors(client, path):
    response = client.get(path, HTTP_HOST="localhost")

    assert response.status_code in {200, 404}
