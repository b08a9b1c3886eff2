"""Production settings are deployable; the public host never touches tenant tables."""

import os
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


# --- production settings fail at boot, before anything starts ---------------------

PRODUCTION = "cms_project.settings.production"
# Unreachable on purpose: these tests must fail before any connection is made.
UNREACHABLE_SERVICES = {
    "DATABASE_URL": "postgres://nobody@127.0.0.1:1/unused",
    "REDIS_URL": "redis://127.0.0.1:1/0",
}


def _manage_production(*args: str, **env: str | None) -> subprocess.CompletedProcess:
    """manage.py under production settings with exactly the given service and host
    variables (a value of None leaves the variable unset)."""
    base = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", "SECRET_KEY"}
    }
    base |= {
        "DJANGO_SETTINGS_MODULE": PRODUCTION,
        "SECRET_KEY": "a-long-random-production-secret-" + "x7Kq" * 10,
    }
    for name, value in env.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("allowed_hosts", [None, "", " , "])
def test_production_settings_refuse_to_start_without_allowed_hosts(allowed_hosts):
    result = _manage_production(
        "check", **UNREACHABLE_SERVICES, ALLOWED_HOSTS=allowed_hosts
    )

    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (
        f"ImproperlyConfigured ({PRODUCTION}): Set the environment variable "
        "ALLOWED_HOSTS to a comma-separated list (it has no default in these "
        "settings)."
    )


def test_production_settings_start_with_explicit_allowed_hosts():
    result = _manage_production(
        "shell",
        "--verbosity",
        "0",
        "-c",
        "from django.conf import settings; print(settings.ALLOWED_HOSTS)",
        **UNREACHABLE_SERVICES,
        ALLOWED_HOSTS=".example.com, shop.example.net",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['.example.com', 'shop.example.net']"


@pytest.mark.parametrize(
    ("unset", "named"),
    [
        (("DATABASE_URL", "REDIS_URL"), "DATABASE_URL and REDIS_URL"),
        (("DATABASE_URL",), "DATABASE_URL"),
        (("REDIS_URL",), "REDIS_URL"),
    ],
)
def test_production_settings_never_start_embedded_servers(tmp_path, unset, named):
    services = {**UNREACHABLE_SERVICES, **dict.fromkeys(unset)}
    result = _manage_production(
        "check", **services, ALLOWED_HOSTS=".example.com", CMS_VAR_DIR=str(tmp_path)
    )

    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (
        f"ImproperlyConfigured ({PRODUCTION}): Set {named}: production settings "
        "never start the embedded development servers."
    )
    # nothing was started: the embedded servers keep their data under CMS_VAR_DIR
    assert list(tmp_path.iterdir()) == []


def _tasks_backend(**env: str) -> str:
    code = (
        "import django; from django.conf import settings; django.setup(); "
        "print(settings.TASKS['default']['BACKEND'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=process_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_test_settings_run_wagtails_tasks_inline_unless_a_private_stack_asks(
    tmp_path,
):
    """In-process tests see index updates at once; the private stacks of the fault
    tests and bench/faults run the product's backend (CMS_TEST_TASKS=product)."""
    from tests.private_stack import PrivateStack

    assert _tasks_backend() == "django_tasks.backends.immediate.ImmediateBackend"
    assert (
        _tasks_backend(CMS_TEST_TASKS="product")
        == "content.task_backend.CeleryTaskBackend"
    )
    stack = PrivateStack(root=tmp_path)  # nothing started: only its environment
    assert stack.env()["CMS_TEST_TASKS"] == "product"
