"""Behind pgbouncer in transaction mode, tenants never read each other's schema.

The test setup installs pgbouncer from Debian's packages when it is missing and runs it
(cms_project.pooler) on 127.0.0.1 with ONE server connection, so every client
transaction lands on the same server connection that the other tenant's client just
used: the worst case for a search_path left behind.
"""

import threading
import time

import psycopg
import pytest
from django.conf import settings
from django.db import OperationalError, connections, transaction
from django_tenants.postgresql_backend.base import (
    DatabaseWrapper as StockTenantWrapper,
)

from cms_project import devstack
from cms_project.debian import ToolMissing
from cms_project.pooler import start_pgbouncer
from tests.ci_plugin import tool_unavailable
from tests.conftest import ACME_HOST, GLOBEX_HOST
from tests.integration import (
    free_port,
    other_connection,
    process_env,
    stop_process,
)

# (also makes pytest-django set up the test database for this module alone)
pytestmark = pytest.mark.django_db

MARKERS = {ACME_HOST: "Acme launches", GLOBEX_HOST: "Globex opens"}


@pytest.fixture(scope="module")
def pgbouncer_port(django_db_setup):
    try:
        pooler = start_pgbouncer(
            [settings.DATABASES["default"]], port=free_port(), pool_size=1
        )
    except ToolMissing as exc:
        tool_unavailable(f"the pooler test needs pgbouncer: {exc}")
    yield pooler.port
    pooler.stop()


@pytest.fixture
def pooled(pgbouncer_port, django_db_blocker):
    """Two clients of the pooler, as two web workers would be."""
    made = []

    def connect(alias: str, wrapper_class=None):
        base = connections["default"]
        settings_dict = {
            **base.settings_dict,
            "HOST": "127.0.0.1",
            "PORT": pgbouncer_port,
            "CONN_MAX_AGE": 0,
        }
        wrapper = (wrapper_class or base.__class__)(settings_dict, alias)
        connections[alias] = wrapper
        made.append(alias)
        return wrapper

    with django_db_blocker.unblock():
        yield connect
        for alias in made:
            connections[alias].close()
            del connections[alias]


def _schema_seen(conn) -> str:
    with conn.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        return cursor.fetchone()[0]


def test_the_pooler_really_shares_one_server_connection(pooled):
    """Guard for the tests below: trusting a session-level SET does mix tenants here
    (statements outside a transaction are each a transaction of their own)."""
    acme, globex = pooled("pooled_a"), pooled("pooled_b")
    acme.set_schema("acme")
    globex.set_schema("globex")

    assert _schema_seen(acme) == "acme"
    assert _schema_seen(globex) == "globex"
    assert _schema_seen(acme) == "globex"  # acme's client trusted its earlier SET


def _schemas_seen_in_alternating_transactions(acme, globex) -> list[str]:
    acme.set_schema("acme")
    globex.set_schema("globex")
    seen = []
    for conn in (acme, globex, acme, globex):
        with transaction.atomic(using=conn.alias):
            seen += [_schema_seen(conn), _schema_seen(conn)]
    return seen


def test_every_transaction_sets_its_own_schema(pooled):
    seen = _schemas_seen_in_alternating_transactions(
        pooled("pooled_a"), pooled("pooled_b")
    )

    assert seen == ["acme", "acme", "globex", "globex"] * 2


def test_the_stock_backend_would_mix_tenants_here(pooled):
    """Why tenants.db_backend exists: django-tenants' own backend trusts its SET
    across transactions."""
    seen = _schemas_seen_in_alternating_transactions(
        pooled("pooled_a", StockTenantWrapper), pooled("pooled_b", StockTenantWrapper)
    )

    assert seen[4:6] == ["globex", "globex"]  # acme's second transaction


def test_requests_through_the_pooler_see_only_their_tenant(pgbouncer_port, tmp_path):
    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@127.0.0.1:{pgbouncer_port}/{db['NAME']}"
    port = free_port()
    server = devstack.start_gunicorn(
        port,
        env=process_env(
            DATABASE_URL=url,
            CMS_DB_TRANSACTION_POOLING="true",
            GUNICORN_ACCESSLOG="/dev/null",
        ),
        log_path=tmp_path / "gunicorn.log",
        workers=2,
    )
    wrong: list[str] = []
    answered = []

    def visit(host: str) -> None:
        import http.client

        for _ in range(25):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            conn.request(
                "GET", "/api/v2/pages/?type=content.ArticlePage", headers={"Host": host}
            )
            body = conn.getresponse().read().decode()
            conn.close()
            answered.append(host)
            other = GLOBEX_HOST if host == ACME_HOST else ACME_HOST
            if MARKERS[host] not in body or MARKERS[other] in body:
                wrong.append(f"{host}: {body[:200]}")

    threads = [
        threading.Thread(target=visit, args=(host,))
        for host in (ACME_HOST, GLOBEX_HOST, ACME_HOST, GLOBEX_HOST)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        stop_process(server)

    assert len(answered) == 100
    assert wrong == []


def _sleep_in_a_transaction(conn, seconds: float) -> str:
    """The schema seen, after sleeping ``seconds`` on the server, in one transaction."""
    with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s), current_schema()", [seconds])
        return cursor.fetchone()[1]


def test_the_statement_timeout_holds_behind_the_pooler(pooled, settings):
    """pgbouncer cannot keep the settings' startup option (``statement_timeout``) per
    client and ignores it: the server would run a runaway statement unbounded after
    the client gave up. With pooling on, the schema's SET carries the timeout."""
    settings.DB_STATEMENT_TIMEOUT_MS = 300
    unguarded = pooled("pooled_a")
    unguarded.set_schema("acme")
    try:
        # the startup option alone is lost behind the pooler
        settings.CMS_DB_TRANSACTION_POOLING = False
        with unguarded.cursor() as cursor:
            cursor.execute("RESET statement_timeout")
        assert _sleep_in_a_transaction(unguarded, 0.6) == "acme"

        settings.CMS_DB_TRANSACTION_POOLING = True
        guarded = pooled("pooled_b")
        guarded.set_schema("globex")
        with pytest.raises(OperationalError, match="statement timeout"):
            _sleep_in_a_transaction(guarded, 0.6)
        # the timeout rides on the schema's SET: a fast statement still sees its own
        assert _sleep_in_a_transaction(guarded, 0) == "globex"
    finally:
        # the one server connection keeps a session SET: leave it as found
        settings.CMS_DB_TRANSACTION_POOLING = False
        with unguarded.cursor() as cursor:
            cursor.execute("RESET statement_timeout")


def test_the_routers_plan_sync_gives_up_on_a_locked_table_behind_the_pooler(
    pgbouncer_port, django_db_blocker, monkeypatch
):
    """The edge router reads each pod's plans on a connection of its own, through
    the pod's pooler. A migration holding the domains table must not hang the sync:
    the server cancels the read (the startup option that used to say so is ignored
    by pgbouncer), and the pod's hosts keep their last limits."""
    from tenants.pods import directory, edge_limits
    from tenants.pods.directory import Pod

    db = settings.DATABASES["default"]
    monkeypatch.setattr(directory, "POD_STATEMENT_TIMEOUT_MS", 300)
    pod = Pod(
        name="pooled",
        database_url=f"postgresql://{db['USER']}@127.0.0.1:{pgbouncer_port}/{db['NAME']}",
        redis_url=settings.REDIS_URL,
        web="127.0.0.1:1",
        state="active",
    )
    with django_db_blocker.unblock():
        assert edge_limits.pod_limits(pod, 2.0) is not None  # reachable, unlocked
    straight = other_connection()  # not through the pooler: its one connection
    # without a timeout the sync would wait for ever: the lock ends after 3 s
    release = threading.Timer(3, straight.rollback)
    try:
        straight.execute("LOCK TABLE public.tenants_domain IN ACCESS EXCLUSIVE MODE")
        release.start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            edge_limits.pod_limits(pod, 2.0)
        assert time.monotonic() - started < 3
    finally:
        release.cancel()
        release.join()
        straight.rollback()
        straight.close()
    # the one server connection is not left with the sync's timeout
    with psycopg.connect(pod.database_url, autocommit=True) as after:
        assert after.execute("SHOW statement_timeout").fetchone()[0] != "300ms"
