"""Shared fixtures.

The test database is reused between runs (``--reuse-db``); ``migrate`` keeps the
template schema current, and the two demo tenants are created once, committed, by
cloning it. Tests run inside a transaction (the ``db`` fixture), so tenants created in
a test vanish with its rollback: PostgreSQL DDL is transactional too.
"""

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import setup_databases, teardown_databases

from content.demo import seed_demo
from tenants.registry.resolution import _tenant_map

# Under CI=true a skipped test fails (tests/ci_plugin.py).
pytest_plugins = ["tests.ci_plugin"]

ACME_HOST = "acme.localhost"
GLOBEX_HOST = "globex.localhost"


def pytest_configure(config):
    """Generated tests: derandomized here, exploring under CI=true; loaded before any
    test module is imported, since their example counts scale with the profile
    (tests/generated.py). Imported here, after tests.ci_plugin is registered."""
    from tests.generated import load_profile

    load_profile()


@pytest.fixture(scope="session")
def django_db_setup(
    django_db_setup, django_db_blocker, django_db_keepdb, django_db_createdb
):
    with django_db_blocker.unblock():
        own_setup = _set_up_test_database_if_skipped(
            keepdb=django_db_keepdb and not django_db_createdb
        )
        seed_demo()
        connection.set_schema_to_public()
    yield
    if own_setup is not None and not django_db_keepdb:
        with django_db_blocker.unblock():
            teardown_databases(own_setup, verbosity=0)


def _set_up_test_database_if_skipped(*, keepdb: bool) -> list | None:
    """pytest-django sets up the test database only when a collected test asks for
    the per-test transaction (``db``). Tests that drive real processes on committed
    data alone (``tests/e2e``, run by themselves) need it too, and must never seed the
    database named by DATABASE_URL."""
    configured_name = urlsplit(os.environ["DATABASE_URL"]).path.lstrip("/")
    if connection.settings_dict["NAME"] != configured_name:
        return None  # pytest-django has set it up
    return setup_databases(
        verbosity=0, interactive=False, aliases={"default"}, keepdb=keepdb
    )


@pytest.fixture(autouse=True)
def _fresh_tenant_map():
    """Each test starts with an empty host map: rolled-back tenants must not linger."""
    _tenant_map.clear()
    yield
    _tenant_map.clear()
    connection.set_schema_to_public()


@pytest.fixture(autouse=True)
def _closed_breakers():
    """Each test starts with closed circuit breakers: a test that points a cache at a
    dead Redis must not leave the next test's Redis calls refused."""
    from tenants.resilience import breakers

    breakers.reset_all()
    yield
    breakers.reset_all()


@pytest.fixture
def labelled_tenants():
    """acme and globex get metric series of their own (as if read from the shared
    top-K list): without it a tenant's figures land under ``other`` or not, depending
    on which test refreshed the process's labels last."""
    from tenants.observability import metrics

    metrics.tenant_labels.update(["acme", "globex"])
    yield
    metrics.tenant_labels.update([])


@pytest.fixture
def acme_client(db) -> Client:
    return Client(HTTP_HOST=ACME_HOST)


@pytest.fixture
def globex_client(db) -> Client:
    return Client(HTTP_HOST=GLOBEX_HOST)


def signed_in(host: str, username: str, password: str) -> Client:
    """A client signed in through the real login form (``Client.login`` would
    bypass the tenant gate)."""
    client = Client(HTTP_HOST=host)
    login = client.post("/admin/login/", {"username": username, "password": password})
    assert login.status_code == 302, f"{username} could not sign in at {host}"
    return client


@pytest.fixture
def acme_admin_client(db) -> Client:
    return signed_in(ACME_HOST, "admin", "acme-admin-demo")


@pytest.fixture
def api_token():
    """Make an API token of a demo tenant acting as one of its users; returns the
    secret. Needs database access (``db`` or committed) from the test."""
    from django.contrib.auth import get_user_model
    from django_tenants.utils import schema_context

    from content.integrations.tokens import token_create
    from tenants.models import Tenant

    def make(
        slug: str = "acme",
        scopes: tuple[str, ...] = ("read", "write", "publish"),
        *,
        username: str = "admin",
        expires_at=None,
    ) -> str:
        with schema_context(slug):
            created = token_create(
                tenant=Tenant.objects.select_related("plan").get(schema_name=slug),
                user=get_user_model().objects.get(username=username),
                name=f"test token ({', '.join(scopes)})",
                scopes=list(scopes),
                expires_at=expires_at,
            )
        return created.plaintext

    return make


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, tmp_path_factory):
    """Real Celery workers on the test database and broker: the publishing worker
    and the webhook delivery worker (threads), logging to one file."""
    from tests.integration import (
        start_celery_worker,
        start_webhook_worker,
        stop_process,
    )

    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    processes = [start_celery_worker(log_path), start_webhook_worker(log_path)]
    yield log_path
    for process in processes:
        stop_process(process)


@pytest.fixture(autouse=True)
def _fresh_limit_counters():
    """Rate counters and concurrency slots live in Redis, outside the test transaction:
    every test starts with none (and with no page, allowance or count a worker keeps
    in memory, tenants.request_path.local_hits)."""
    from tenants.redis_store.keys import state_redis, tenant_key_pattern
    from tenants.request_path.local_hits import local_hits

    local_hits.reset()  # pages, allowances and counts kept from an earlier test
    client = state_redis()
    for pattern in ("*:test:*", tenant_key_pattern("*"), "cms:test:fairq:*:rate:*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    yield


@pytest.fixture(autouse=True)
def _rate_windows_from_the_tests_start(request, monkeypatch):
    """django-ratelimit's fixed windows end at a second offset per key (a hash of
    it), so a window may end between two requests of a test that counts on one:
    a test that asks for three reads and a refusal then flakes once in a minute's
    worth of runs (CI did, a read at second :14 and the next at :15). In process,
    windows are aligned to the test's start instead, and still roll over for a test
    that waits out a window; ``real_rate_windows`` keeps django-ratelimit's own."""
    if request.node.get_closest_marker("real_rate_windows"):
        yield
        return
    import time

    import django_ratelimit.core

    from tenants.adapters import ratelimit as ratelimit_internals

    start = int(time.time())

    def window_from_start(value, period: int) -> int:
        return start + period * (1 + (int(time.time()) - start) // period)

    monkeypatch.setattr(django_ratelimit.core, "_get_window", window_from_start)
    monkeypatch.setattr(ratelimit_internals, "_get_window", window_from_start)
    yield


@pytest.fixture
def redis_commands(monkeypatch) -> list[str]:
    """The round trips to Redis, in order: a command's name (a Lua script call is
    one), or ``PIPELINE:`` and the names of the pipelined commands joined by ``+``.
    Single commands are counted where they are sent, on the connection (a script
    call sends its ``EVALSHA`` there without the client's ``execute_command``); a
    new connection's handshake is not a round trip of the request."""
    import redis

    calls: list[str] = []
    original = redis.connection.AbstractConnection.send_command
    original_pipeline = redis.client.Pipeline.execute
    test = threading.current_thread()  # not the local-hits sender's round trips

    def counting(self, *args, **options):
        if threading.current_thread() is test and not getattr(
            self, "handshaking", False
        ):
            calls.append(str(args[0]))
        return original(self, *args, **options)

    def counting_pipeline(self, *args, **options):
        if threading.current_thread() is test:
            names = "+".join(str(command[0][0]) for command in self.command_stack)
            calls.append(f"PIPELINE:{names}")
        return original_pipeline(self, *args, **options)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_command", counting)
    monkeypatch.setattr(redis.client.Pipeline, "execute", counting_pipeline)
    return calls


@pytest.fixture
def slot_waits(monkeypatch) -> list[float]:
    """The sleeps of this test's thread while it waits for a worker's database
    slot. ``time.sleep`` is the module's, shared with every thread of the process:
    the local-hits sender's sleeps are neither counted nor skipped (a sender whose
    sleep returned at once would spin)."""
    from tenants.resilience import worker_reserve

    waits: list[float] = []
    test, real_sleep = threading.current_thread(), time.sleep

    def sleep(seconds: float) -> None:
        if threading.current_thread() is test:
            waits.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(worker_reserve.time, "sleep", sleep)
    return waits


@contextlib.contextmanager
def all_slots_taken(schema: str) -> Iterator[None]:
    """Every concurrency slot of the tenant held, as by requests still running."""
    from tenants.models import Tenant
    from tenants.tariffs.admission import acquire_slot, release_slot

    cap = Tenant.objects.select_related("plan").get(schema_name=schema).plan
    held = [
        acquire_slot(schema, cap.concurrent_requests)
        for _ in range(cap.concurrent_requests)
    ]
    assert all(held)
    try:
        yield
    finally:
        for token in held:
            release_slot(schema, token)


@pytest.fixture(scope="session")
def dns_server():
    """A DNS server on loopback answering for *.example.test (A 127.0.0.1 and the TXT
    records a test publishes); the app's resolver (CMS_DNS_RESOLVER) points at it,
    in this process and in workers started after it."""
    from django.conf import settings

    from tests.dns_server import TestDnsServer, free_udp_and_tcp_port

    server = TestDnsServer(port=free_udp_and_tcp_port(), zones=("example.test",))
    server.start()
    previous = settings.CMS_DNS_RESOLVER
    settings.CMS_DNS_RESOLVER = server.address
    os.environ["CMS_DNS_RESOLVER"] = server.address
    yield server
    settings.CMS_DNS_RESOLVER = previous
    os.environ.pop("CMS_DNS_RESOLVER", None)
    server.stop()


@pytest.fixture
def published(dns_server):
    """The test DNS server's TXT records, emptied after the test."""
    dns_server.clear()
    yield dns_server
    dns_server.clear()


@pytest.fixture(scope="session")
def tls_edge_app_port() -> int:
    """The port of the pool Caddy proxies to (and asks): chosen before either starts."""
    from tests.integration import free_port

    return free_port()


@pytest.fixture(scope="session")
def tls_edge(dns_server, tls_edge_app_port, tmp_path_factory):
    """ONE pebble and ONE Caddy (deploy/caddy/Caddyfile) for the whole session, in
    front of the pool a module starts on ``tls_edge_app_port`` (tests/tls_edge.py)."""
    from tests.tls_edge import start_tls_edge, stop_tls_edge

    edge = start_tls_edge(
        directory=tmp_path_factory.mktemp("tls-edge"),
        dns_address=dns_server.address,
        app_port=tls_edge_app_port,
    )
    yield edge
    stop_tls_edge(edge)
