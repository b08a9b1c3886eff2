"""Limits hold across a real gunicorn pool of several worker processes."""

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from tenants.models import Plan, Tenant
from tenants.provisioning.creation import tenant_create, tenant_delete
from tenants.tariffs.plans import plan_create, plan_update
from tests.integration import free_port, http_get, start_gunicorn, stop_process

HOST = "poolcheck.localhost"
LIMIT = 40


@pytest.fixture(scope="module")
def pool_tenant(django_db_setup, django_db_blocker):
    """A committed tenant on its own plan, visible to the gunicorn workers."""
    with django_db_blocker.unblock():
        _remove_leftovers()  # of an earlier run that was killed half-way
        plan_create(
            name="pool-check", limits={"public_reads_per_minute": LIMIT}, base="pro"
        )
        tenant_create(
            slug="poolcheck", name="Pool check", domains=[HOST], plan="pool-check"
        )
        connection.set_schema_to_public()
        yield
        _remove_leftovers()


def _remove_leftovers() -> None:
    if Tenant.objects.filter(schema_name="poolcheck").exists():
        tenant_delete(slug="poolcheck", confirm=True)
    Plan.objects.filter(name="pool-check").delete()
    connection.set_schema_to_public()


@pytest.fixture(scope="module")
def pool(pool_tenant, tmp_path_factory):
    port = free_port()
    process = start_gunicorn(
        port, tmp_path_factory.mktemp("gunicorn") / "log", workers=2
    )
    yield port
    stop_process(process)


def _seconds_left(headers: dict) -> int:
    return int(re.search(r";t=(\d+)", headers["RateLimit"]).group(1))


def test_limit_is_exact_across_worker_processes(pool, django_db_blocker):
    status, headers = http_get(pool, HOST)
    assert status == 200
    if _seconds_left(headers) < 20:  # don't let the burst straddle two windows
        time.sleep(_seconds_left(headers) + 1)
        status, headers = http_get(pool, HOST)
    used = LIMIT - int(re.search(r";r=(\d+)", headers["RateLimit"]).group(1))

    with ThreadPoolExecutor(max_workers=8) as executor:
        statuses = list(
            executor.map(lambda _: http_get(pool, HOST)[0], range(2 * LIMIT))
        )

    assert statuses.count(200) == LIMIT - used
    assert statuses.count(429) == 2 * LIMIT - (LIMIT - used)


def test_plan_change_reaches_every_worker_within_a_second(pool, django_db_blocker):
    new_policy = '"public-reads-per-minute";q=5000;w=60'
    with django_db_blocker.unblock():
        plan_update(name="pool-check", limits={"public_reads_per_minute": 5000})
    time.sleep(1.0)

    # Concurrent requests so that every worker process answers some of them.
    with ThreadPoolExecutor(max_workers=4) as executor:
        policies = set(
            executor.map(
                lambda _: http_get(pool, HOST)[1]["RateLimit-Policy"], range(20)
            )
        )

    assert policies == {new_policy}
