"""A task enqueued in a tenant's request runs in its schema on a real worker."""

import pytest
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context
from wagtail.models import Page, Site

from content.models import ArticlePage
from tests.conftest import ACME_HOST
from tests.integration import wait_for


def _draft_article(schema: str, title: str) -> int:
    with schema_context(schema):
        home = Site.objects.get(is_default_site=True).root_page
        article = ArticlePage(title=title, intro="draft", live=False)
        home.add_child(instance=article)
        article.save_revision()
        return article.pk


def _is_live(schema: str, page_id: int) -> bool:
    with schema_context(schema):
        page = Page.objects.get(pk=page_id)
        return page.live and page.live_revision_id is not None


@pytest.fixture
def committed(django_db_blocker):
    """Autocommit access to the test database for tests that share it with a worker."""
    with django_db_blocker.unblock():
        yield
        connection.set_schema_to_public()


def test_publish_enqueued_at_acme_runs_in_acme_schema(committed, celery_worker):
    acme_id = _draft_article("acme", "Background launch")
    # Make globex hold a draft with the very same page id, so a task run in the wrong
    # schema would publish it.
    globex_id = _draft_article("globex", "Globex draft")
    with schema_context("globex"):
        while globex_id < acme_id:
            globex_id = _draft_article("globex", f"Globex draft {globex_id}")
    try:
        client = Client(HTTP_HOST=ACME_HOST)
        login = client.post(
            "/admin/login/", {"username": "admin", "password": "acme-admin-demo"}
        )
        assert login.status_code == 302

        response = client.post(f"/admin/content/publish-in-background/{acme_id}/")

        assert response.status_code == 302
        wait_for(
            lambda: _is_live("acme", acme_id),
            timeout=60,
            what=f"acme page {acme_id} to be published by the worker "
            f"(worker log: {celery_worker})",
        )
        assert not _is_live("globex", acme_id)
        public = Client(HTTP_HOST=ACME_HOST).get("/background-launch/")
        assert public.status_code == 200
    finally:
        with schema_context("acme"):
            Page.objects.filter(pk=acme_id).delete()
        with schema_context("globex"):
            Page.objects.filter(title__startswith="Globex draft").delete()
