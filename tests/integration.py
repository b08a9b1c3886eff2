"""Helpers for integration tests that need committed data and real processes."""

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    """DATABASE_URL of the test database (pytest-django renamed the database)."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    name = settings.DATABASES["default"]["NAME"]
    return urlunsplit(parts._replace(path=f"/{name}"))


def process_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="cms_project.settings.test",
        DATABASE_URL=test_database_url(),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def start_celery_worker(log_path: Path, *, concurrency: int = 1) -> subprocess.Popen:
    log = log_path.open("w")
    return subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "cms_project", "worker",
            "--pool", "prefork", "--concurrency", str(concurrency),
            "--loglevel", "INFO", "--without-gossip", "--without-mingle",
        ],
        cwd=REPO_ROOT,
        env=process_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_for(condition: Callable[[], object], *, timeout: float, what: str) -> object:
    """Poll until ``condition()`` is truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
