"""The tenant's schema is set once per request, not before every query.

django-tenants sends ``SET search_path`` whenever a cursor is opened unless
``TENANT_LIMIT_SET_CALLS`` is on; with it, the statement goes out once after each
schema change (the gate changes it once per request) and again after a rollback,
which discards it in PostgreSQL.
"""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from content.models import ArticlePage

pytestmark = pytest.mark.django_db


def _search_path_sets(queries: list[dict]) -> int:
    return sum(1 for q in queries if q["sql"].upper().startswith("SET SEARCH_PATH"))


@pytest.mark.parametrize("path", ["/", "/acme-launches-the-mark-iv/", "/api/v2/pages/"])
def test_a_page_request_sets_the_schema_at_most_once(acme_client, settings, path):
    settings.CMS_PAGE_CACHE_SECONDS = 0  # every request renders, with its queries
    acme_client.get(path)  # warm the host map and Wagtail's caches

    with CaptureQueriesContext(connection) as captured:
        response = acme_client.get(path)

    assert response.status_code == 200
    assert len(captured.captured_queries) > 1
    assert _search_path_sets(captured.captured_queries) == 1


def test_requests_alternating_tenants_each_get_their_own_schema(
    acme_client, globex_client, settings
):
    settings.CMS_PAGE_CACHE_SECONDS = 0
    for _ in range(2):
        assert "Acme launches" in acme_client.get("/").content.decode()
        globex = globex_client.get("/").content.decode()
        assert "Globex opens" in globex
        assert "Acme launches" not in globex


def test_savepoint_rollback_does_not_leave_a_stale_schema():
    """django-tenants #1262: ROLLBACK TO SAVEPOINT reverts a SET search_path issued
    inside it; the backend must send it again rather than trust its cached value."""
    with schema_context("acme"):
        assert ArticlePage.objects.count() == 3
        with transaction.atomic():
            sid = transaction.savepoint()
            connection.set_schema("globex")
            assert ArticlePage.objects.count() == 2
            transaction.savepoint_rollback(sid)
            # the connection still says globex; its queries must run there
            assert ArticlePage.objects.count() == 2
