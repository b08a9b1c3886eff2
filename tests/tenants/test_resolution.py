"""What a worker drops when another process changes tenants."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django_redis import get_redis_connection
from django_tenants.utils import schema_context

from tenants.registry.resolution import _tenant_map, generation_key, resolve_tenant
from tests.wsgi_app import gunicorn_conf

pytestmark = pytest.mark.django_db


def test_a_tenant_change_elsewhere_drops_hosts_and_kept_content_types(settings):
    settings.CMS_TENANT_CACHE_CHECK_SECONDS = 0
    assert resolve_tenant("acme.localhost").schema_name == "acme"
    with schema_context("acme"):
        ContentType.objects.get_for_model(ContentType)  # kept for acme's schema
        assert ContentType.objects._cache

    # what tenant_delete/tenant_create in another process leave in Redis
    get_redis_connection("default").incr(generation_key())
    resolve_tenant("acme.localhost")

    assert not ContentType.objects._cache
    assert list(_tenant_map._hosts) == ["acme.localhost"]  # loaded again


def test_a_generation_lost_from_redis_never_comes_back_to_one_a_worker_holds(settings):
    """Redis restarted empty (or evicted the key) after this worker read generation
    1; another process then adds a domain and bumps. The worker must see a change:
    a counter that restarted at 1 would look unchanged and hide the domain for good."""
    from tenants.models import Domain
    from tenants.redis_store.keys import bump_generation, cache_redis

    settings.CMS_TENANT_CACHE_CHECK_SECONDS = 0
    client = cache_redis()
    client.set(generation_key(), 1)
    acme = resolve_tenant("acme.localhost")
    assert resolve_tenant("new.example.test") is None  # holds generation "1"

    client.delete(generation_key())  # lost
    # another process: a domain verified, then its bump (no signal reaches here)
    Domain.objects.bulk_create(
        [
            Domain(
                domain="new.example.test",
                tenant=acme,
                is_primary=False,
                status="verified",
            )
        ]
    )
    bump_generation(client, generation_key())

    assert resolve_tenant("new.example.test") == acme


def test_a_preloaded_map_answers_every_host_without_a_query(
    settings, django_assert_num_queries
):
    """What a gunicorn worker does when it starts: one query, then every host (and
    every unknown one) is answered from memory, as a database outage would need."""
    from django.db import connection

    from tenants.models import Domain
    from tenants.registry.resolution import preload_tenant_map

    settings.CMS_TENANT_CACHE_CHECK_SECONDS = 60
    _tenant_map.clear()
    served = set(
        Domain.objects.filter(status="verified")
        .exclude(tenant__status="template")
        .values_list("domain", flat=True)
    )
    assert {"acme.localhost", "globex.localhost"} <= served
    connection.set_schema_to_public()
    connection.ensure_connection()
    with connection.cursor() as cursor:  # django-tenants sets the search path once
        cursor.execute("SELECT 1")

    with django_assert_num_queries(1):
        assert preload_tenant_map() == len(served)
    with django_assert_num_queries(0):
        acme = resolve_tenant("acme.localhost")
        assert resolve_tenant("globex.localhost").schema_name == "globex"
        assert resolve_tenant("nobody.example.test") is None
    assert acme.schema_name == "acme"
    assert acme.primary_host == "acme.localhost"
    assert acme.plan.name == "pro"


def test_a_preload_raced_by_a_change_keeps_nothing(settings, monkeypatch):
    """A generation bumped while the rows were read: they may predate the change,
    so the map stays empty and hosts load as asked."""
    from tenants.registry import resolution

    settings.CMS_TENANT_CACHE_CHECK_SECONDS = 0
    _tenant_map.clear()
    rows = resolution._served_domains

    def bumped_meanwhile():
        get_redis_connection("default").incr(generation_key())
        return rows()

    monkeypatch.setattr(resolution, "_served_domains", bumped_meanwhile)
    assert resolution.preload_tenant_map() == 0
    assert _tenant_map._hosts == {}


def test_a_gunicorn_worker_loads_the_host_map_when_it_starts(settings, monkeypatch):
    import logging
    from types import SimpleNamespace

    from django.db import connection

    monkeypatch.setattr(connection, "close", lambda: None)  # the test's transaction

    settings.CMS_TENANT_CACHE_CHECK_SECONDS = 60
    _tenant_map.clear()
    worker = SimpleNamespace(log=logging.getLogger("test.gunicorn"))

    gunicorn_conf()["post_worker_init"](worker)

    assert {"acme.localhost", "globex.localhost"} <= set(_tenant_map._hosts)


def test_a_gunicorn_worker_starts_without_a_database(settings, caplog, monkeypatch):
    import logging
    from types import SimpleNamespace

    from django.db import OperationalError, connection

    from tenants.registry import resolution

    monkeypatch.setattr(connection, "close", lambda: None)  # the test's transaction

    def out():
        raise OperationalError("connection refused")

    monkeypatch.setattr(resolution, "_served_domains", out)
    _tenant_map.clear()
    worker = SimpleNamespace(log=logging.getLogger("test.gunicorn"))

    with caplog.at_level(logging.WARNING, logger="test.gunicorn"):
        gunicorn_conf()["post_worker_init"](worker)

    assert "host map not preloaded: connection refused" in caplog.text
    assert _tenant_map._hosts == {}
