"""Running an operator command on the pod that holds the tenant.

A pod's database and Redis are only written by that pod's own code, so a command
about a tenant on another pod runs again as ``manage.py`` with that pod's service
URLs (from the directory), its output and exit code passed through. The operator
may therefore run any ``tenants`` command on any pod's host.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import redis
from django.conf import settings

from tenants.pods import directory
from tenants.pods.directory import Pod, PodError
from tenants.redis_store.keys import bump_generation

MANAGE_PY = Path(__file__).resolve().parents[2] / "manage.py"
# Derived per pod from REDIS_URL; an operator's explicit value would point at the
# wrong pod's broker.
POD_SPECIFIC = ("CELERY_BROKER_URL",)


def bump_generation_on(pod: Pod) -> None:
    """Make ``pod``'s processes re-read their host map and plans (each checks the
    generation every ``CMS_TENANT_CACHE_CHECK_SECONDS``)."""
    from tenants.registry.resolution import generation_key

    bump_generation(
        redis.Redis.from_url(pod.redis_url, socket_timeout=3), generation_key()
    )


def pod_environment(pod: Pod) -> dict[str, str]:
    env = dict(os.environ)
    for name in POD_SPECIFIC:
        env.pop(name, None)
    env.update(
        DATABASE_URL=pod.database_url,
        REDIS_URL=pod.redis_url,
        CMS_POD=pod.name,
        CMS_DIRECTORY_URL=settings.CMS_DIRECTORY_URL,
    )
    return env


def run_on_pod_captured(pod_name: str, argv: list[str]) -> str:
    """``manage.py *argv`` on ``pod_name``: its output, or ``PodError`` naming the
    last line it wrote to stderr when it failed."""
    out, err = io.StringIO(), io.StringIO()
    code = run_on_pod(pod_name, argv, stdout=out, stderr=err)
    if code != 0:
        reason = err.getvalue().strip().splitlines()[-1:] or [f"exit code {code}"]
        raise PodError(f"pod {pod_name} did not answer: {reason[0]}")
    return out.getvalue()


def run_on_pod(pod_name: str, argv: list[str], *, stdout, stderr) -> int:
    """``manage.py *argv`` on ``pod_name``; its output written to the given streams."""
    pod = directory.pod_get(pod_name)
    result = subprocess.run(
        [sys.executable, str(MANAGE_PY), *argv],
        env=pod_environment(pod),
        capture_output=True,
        text=True,
        check=False,
    )
    stdout.write(result.stdout)
    stderr.write(result.stderr)
    return result.returncode
