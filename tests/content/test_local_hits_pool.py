"""Pages answered from workers' memory in a real gunicorn pool of several worker
processes (tenants.request_path.local_hits): a publish reaches every worker's memory
before its next answer, and every answer is counted."""

import http.client
import threading
import time

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from wagtail.models import Page

from tenants.metering import flush
from tenants.models import Plan, Tenant, UsageDay
from tenants.provisioning.creation import tenant_create, tenant_delete
from tenants.tariffs.plans import plan_create
from tests.integration import free_port, start_gunicorn, stop_process, wait_for

HOST = "localhits.localhost"
SCHEMA = "localhits"


@pytest.fixture(scope="module")
def roomy_tenant(django_db_setup, django_db_blocker):
    """A committed tenant whose limits are far from reach, visible to the workers."""
    with django_db_blocker.unblock():
        _remove_leftovers()  # of an earlier run that was killed half-way
        plan_create(
            name="local-hits",
            limits={
                "public_reads_per_minute": 1_000_000,
                "public_reads_per_client_per_minute": 1_000_000,
            },
            base="pro",
        )
        tenant_create(slug=SCHEMA, name="Local hits", domains=[HOST], plan="local-hits")
        connection.set_schema_to_public()
        yield
        _remove_leftovers()


def _remove_leftovers() -> None:
    if Tenant.objects.filter(schema_name=SCHEMA).exists():
        tenant_delete(slug=SCHEMA, confirm=True)
    Plan.objects.filter(name="local-hits").delete()
    connection.set_schema_to_public()


@pytest.fixture(scope="module")
def pool(roomy_tenant, tmp_path_factory):
    port = free_port()
    process = start_gunicorn(
        port, tmp_path_factory.mktemp("gunicorn") / "log", workers=2
    )
    yield port
    stop_process(process)


def _pages(port: int, count: int) -> list[tuple[str, bytes]]:
    """``count`` reads of the home page, each on a new connection, so that both
    workers answer some."""
    answers = []
    for _ in range(count):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/", headers={"Host": HOST})
            response = conn.getresponse()
            answers.append((response.getheader("X-Page-Cache"), response.read()))
            assert response.status == 200
        finally:
            conn.close()
    return answers


def _rename_home(title: str) -> None:
    with schema_context(SCHEMA):
        home = Page.objects.get(depth=2).specific
        home.title = title
        home.save_revision().publish()


def test_a_publish_reaches_every_workers_memory_before_its_next_answer(
    pool, django_db_blocker
):
    with django_db_blocker.unblock():
        _rename_home("Before the publish")
    published, stop = threading.Event(), threading.Event()
    after: list[bytes] = []

    def read_on() -> None:
        # reads without pause keep every worker answering from memory (and
        # deciding again every 100 ms) while the page is published
        while not stop.is_set():
            sent_after_the_publish = published.is_set()
            _, body = _pages(pool, 1)[0]
            if sent_after_the_publish:
                after.append(body)

    readers = [threading.Thread(target=read_on) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        time.sleep(0.5)
        with django_db_blocker.unblock():
            _rename_home("After the publish")
        published.set()
        time.sleep(0.5)
    finally:
        stop.set()
        for reader in readers:
            reader.join()

    assert len(after) > 20
    assert all(b"After the publish" in body for body in after)


def test_every_answer_from_memory_reaches_the_usage_counts(pool, django_db_blocker):
    time.sleep(0.6)  # what workers held of earlier tests' reads is sent by then
    with django_db_blocker.unblock():
        flush.flush_usage()
        before = _public_reads()
    answers = _pages(pool, 60)
    assert [cache for cache, _ in answers[-20:]] == ["hit"] * 20

    def counted() -> bool:
        with django_db_blocker.unblock():
            flush.flush_usage()
            return _public_reads() - before == 60

    wait_for(counted, timeout=10, what="60 reads in the usage counts")
    time.sleep(0.6)  # nothing more arrives later (no read counted twice)
    with django_db_blocker.unblock():
        flush.flush_usage()
        assert _public_reads() - before == 60


def _public_reads() -> int:
    return sum(
        UsageDay.objects.filter(tenant__schema_name=SCHEMA).values_list(
            "public_reads", flat=True
        )
    )
