"""Shared fixtures.

The test database is reused between runs (``--reuse-db``); ``migrate`` keeps the
template schema current, and the two demo tenants are created once, committed, by
cloning it. Tests run inside a transaction (the ``db`` fixture), so tenants created in
a test vanish with its rollback: PostgreSQL DDL is transactional too.
"""

import pytest
from django.db import connection
from django.test import Client

from content.demo import seed_demo
from tenants.resolution import _tenant_map

ACME_HOST = "acme.localhost"
GLOBEX_HOST = "globex.localhost"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        seed_demo()
        connection.set_schema_to_public()


@pytest.fixture(autouse=True)
def _fresh_tenant_map():
    """Each test starts with an empty host map: rolled-back tenants must not linger."""
    _tenant_map.clear()
    yield
    _tenant_map.clear()
    connection.set_schema_to_public()


@pytest.fixture
def acme_client(db) -> Client:
    return Client(HTTP_HOST=ACME_HOST)


@pytest.fixture
def globex_client(db) -> Client:
    return Client(HTTP_HOST=GLOBEX_HOST)


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, tmp_path_factory):
    """A real Celery worker process on the test database and broker."""
    from tests.integration import start_celery_worker, stop_process

    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    process = start_celery_worker(log_path)
    yield log_path
    stop_process(process)


@pytest.fixture(autouse=True)
def _fresh_limit_counters():
    """Rate counters and concurrency slots live in Redis, outside the test transaction:
    every test starts with none."""
    from django_redis import get_redis_connection

    client = get_redis_connection("ratelimit")
    for pattern in ("*:test:*", "cms:inflight:*", "cms:fairq:*:rate:*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    yield
