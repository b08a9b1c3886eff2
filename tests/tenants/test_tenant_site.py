"""Each tenant's Wagtail Site is known without a query per request, and a change to it
is seen on the next request."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context
from wagtail.models import Site

pytestmark = pytest.mark.django_db


def _site_queries(client, path: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path, HTTP_COOKIE="cms_session=none")  # not cached
    assert response.status_code == 200
    return [
        q["sql"] for q in captured.captured_queries if "wagtailcore_site" in q["sql"]
    ]


def test_pages_are_served_without_a_site_query(acme_client):
    _site_queries(acme_client, "/")  # the first request of this host looks it up

    assert _site_queries(acme_client, "/") == []
    assert _site_queries(acme_client, "/acme-launches-the-mark-iv/") == []


def test_a_changed_site_is_seen_on_the_next_request(acme_client, globex_client):
    before = acme_client.get("/", HTTP_COOKIE="cms_session=none").content.decode()
    with schema_context("acme"):
        site = Site.objects.get(is_default_site=True)
        site.site_name = "Acme Rockets Renamed"
        site.save()

    after = acme_client.get("/", HTTP_COOKIE="cms_session=none").content.decode()
    globex = globex_client.get("/", HTTP_COOKIE="cms_session=none").content.decode()

    assert "Acme Rockets Renamed" not in before
    assert "Acme Rockets Renamed" in after
    assert "Acme Rockets Renamed" not in globex
