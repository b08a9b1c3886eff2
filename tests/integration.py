"""Helpers for integration tests that need committed data and real processes."""

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from django.conf import settings
from django.db import connection

# the one port picker, shared with the benchmarks (re-exported for the tests)
from bench.common import free_port as free_port
from cms_project import devstack

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    """DATABASE_URL of the test database (pytest-django renamed the database)."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    name = settings.DATABASES["default"]["NAME"]
    return urlunsplit(parts._replace(path=f"/{name}"))


def other_connection(*, autocommit: bool = False) -> psycopg.Connection:
    """A second connection to the test database, outside Django: what another
    process (a worker) does concurrently with the code under test."""
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        user=db["USER"],
        dbname=db["NAME"],
        autocommit=autocommit,
    )


def process_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="cms_project.settings.test",
        DATABASE_URL=test_database_url(),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def start_celery_worker(
    log_path: Path,
    *,
    concurrency: int = 1,
    queues: list[str] | None = None,
    pool: str = "prefork",
    name: str | None = None,
) -> subprocess.Popen:
    """A worker process on the test database; several may append to one log."""
    log = log_path.open("a")
    return subprocess.Popen(
        [
            *devstack.celery_worker_command(
                queues=queues, pool=pool, concurrency=concurrency, name=name
            ),
            "--without-gossip", "--without-mingle",
        ],
        cwd=REPO_ROOT,
        env=process_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def start_webhook_worker(log_path: Path) -> subprocess.Popen:
    """The delivery worker, as the product runs it: threads, on the webhooks lane's
    queue."""
    return start_celery_worker(
        log_path,
        concurrency=4,
        queues=[settings.CMS_WEBHOOKS_QUEUE],
        pool="threads",
        name="webhooks@%h",
    )


def wait_for(condition: Callable[[], object], *, timeout: float, what: str) -> object:
    """Poll until ``condition()`` is truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


stop_process = devstack.stop_process


def start_gunicorn(port: int, log_path: Path, *, workers: int = 2) -> subprocess.Popen:
    return devstack.start_gunicorn(
        port,
        env=process_env(GUNICORN_ACCESSLOG="/dev/null"),
        log_path=log_path,
        workers=workers,
    )


def http_get(port: int, host: str, path: str = "/") -> tuple[int, dict[str, str]]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        conn.close()
