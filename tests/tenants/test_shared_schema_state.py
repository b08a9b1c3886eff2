"""A fresh worker learns each tenant's Site and content types from what another worker
shared (tenants.registry.shared), not from queries into every tenant's schema - and
never from what a change has made stale."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management.sql import emit_post_migrate_signal
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_redis import get_redis_connection
from django_tenants.utils import schema_context
from wagtail.models import Site

from tenants.adapters.django import forget_content_types
from tenants.registry import shared
from tenants.registry.resolution import _tenant_map, generation_key

pytestmark = pytest.mark.django_db

ARTICLE = "/acme-launches-the-mark-iv/"
PROBE_ID = 987_655


@pytest.fixture(autouse=True)
def _checked_every_request(settings):
    settings.CMS_TENANT_CACHE_CHECK_SECONDS = 0
    settings.CMS_PAGE_CACHE_SECONDS = 0


def _fresh_worker() -> None:
    """What a recycled worker starts with: nothing kept in memory, the same
    generation in Redis."""
    _tenant_map.clear()
    forget_content_types()


def _queries_of(client, path: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200
    return [query["sql"] for query in captured.captured_queries]


def _reads(queries: list[str], table: str) -> list[str]:
    return [sql for sql in queries if f'"{table}"' in sql]


def test_a_fresh_worker_reads_no_site_and_no_content_type_another_shared(
    acme_client,
):
    _fresh_worker()
    first = _queries_of(acme_client, ARTICLE)  # the first worker reads and shares
    assert _reads(first, "wagtailcore_site")
    assert _reads(first, "django_content_type")

    _fresh_worker()
    fresh = _queries_of(acme_client, ARTICLE)

    assert _reads(fresh, "wagtailcore_site") == []
    assert _reads(fresh, "django_content_type") == []
    # the page itself is read as always
    assert _reads(fresh, "wagtailcore_page")


def test_shared_content_types_stay_per_schema(acme_client):
    """One id naming different models in two schemas: each schema's own."""
    for schema, model in (("acme", "acmeonly"), ("globex", "globexonly")):
        with schema_context(schema):
            ContentType.objects.create(id=PROBE_ID, app_label="probe", model=model)
    for _ in range(2):  # the second time from the shared rows
        _fresh_worker()
        for schema, model in (("acme", "acmeonly"), ("globex", "globexonly")):
            with schema_context(schema):
                assert ContentType.objects.get_for_id(PROBE_ID).model == model
                assert (
                    ContentType.objects.get_by_natural_key("probe", model).id
                    == PROBE_ID
                )


def test_a_content_type_created_after_the_rows_were_shared_is_still_found():
    _fresh_worker()
    with schema_context("acme"):
        ContentType.objects.get_for_model(Site)  # acme's rows are shared now
    with schema_context("acme"):
        created = ContentType.objects.create(app_label="probe", model="later")
    _fresh_worker()

    with schema_context("acme"):
        assert ContentType.objects.get_for_id(created.id).model == "later"


def test_the_end_of_a_migration_stops_every_process_using_the_rows_shared_before(
    acme_client,
):
    """A migration may rename a content type under its id (Django's
    RenameContentType): rows shared before it must not be read after it."""
    _fresh_worker()
    with schema_context("acme"):
        renamed = ContentType.objects.create(app_label="probe", model="before")
    _fresh_worker()
    with schema_context("acme"):
        assert ContentType.objects.get_for_id(renamed.id).model == "before"  # shared
        ContentType.objects.filter(id=renamed.id).update(model="after")  # migrating
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")  # ends
    _fresh_worker()

    with schema_context("acme"):
        assert ContentType.objects.get_for_id(renamed.id).model == "after"


def test_a_migration_moves_the_generation_once_not_once_per_app():
    """A fleet migration runs migrate once per schema, and Django ends each with one
    post_migrate per app: every move of the generation makes every web worker drop
    its host map, so one move per migrate is what it must cost."""
    redis = get_redis_connection("default")
    redis.set(generation_key(), 100)
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    assert int(redis.get(generation_key())) == 101


def test_after_djangos_own_clear_this_process_reads_the_database():
    """Django clears the cache while a migration creates or renames content types;
    rows shared before may predate that, so the process stops using them until the
    generation moves on."""
    _fresh_worker()
    with schema_context("acme"):
        ContentType.objects.get_for_model(Site)  # shared
    ContentType.objects.clear_cache()

    with schema_context("acme"), CaptureQueriesContext(connection) as captured:
        ContentType.objects.get_for_model(Site)

    read = _reads([q["sql"] for q in captured.captured_queries], "django_content_type")
    assert len(read) == 1 and '"model" = ' in read[0]  # Django's own query


def test_a_changed_site_is_not_read_from_the_shared_entry(acme_client):
    _fresh_worker()
    _queries_of(acme_client, "/")  # acme's Site shared
    with schema_context("acme"):
        site = Site.objects.get(is_default_site=True)
        site.site_name = "Acme Rockets Renamed"
        site.save()
    _fresh_worker()

    assert "Acme Rockets Renamed" in acme_client.get("/").content.decode()


def test_pages_are_served_from_the_database_while_redis_cannot_be_asked(
    acme_client, monkeypatch
):
    def unreachable():
        raise ConnectionError("Redis down")

    _fresh_worker()
    _queries_of(acme_client, ARTICLE)
    monkeypatch.setattr(shared, "cache_redis", unreachable)
    _fresh_worker()

    queries = _queries_of(acme_client, ARTICLE)  # nothing shared can be read

    assert _reads(queries, "wagtailcore_site")
    assert _reads(queries, "django_content_type")


def test_shared_entries_are_keyed_by_generation_and_deleted_with_the_tenant(
    acme_client,
):
    from tenants.redis_store.keys import tenant_key_pattern

    _fresh_worker()
    _queries_of(acme_client, ARTICLE)
    client = get_redis_connection("default")
    keys = [key.decode() for key in client.scan_iter(tenant_key_pattern("acme"))]
    generation = client.get(generation_key()).decode()

    shared_keys = [key for key in keys if ":shared:" in key]
    assert {key.split(":shared:")[1].split(":")[0] for key in shared_keys} == {
        "site",
        "content-types",
    }
    assert all(f":{generation}" in key for key in shared_keys)
    assert all(0 < client.ttl(key) <= shared.SHARED_SECONDS for key in shared_keys)
