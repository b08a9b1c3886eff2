"""Background jobs in the admin: each tenant sees its own, the plan's hourly publish
allowance is enforced with a message, and bad requests get a readable answer."""

import pytest
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context
from wagtail.models import Site

from content.jobs import NoTenant, enqueue_job
from content.models import BackgroundJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(acme_client):
    login = acme_client.post(
        "/admin/login/", {"username": "admin", "password": "acme-admin-demo"}
    )
    assert login.status_code == 302
    return acme_client


def _home_id() -> int:
    with schema_context("acme"):
        return Site.objects.get(is_default_site=True).root_page_id


def test_acme_admin_lists_acme_jobs_only(admin_client):
    with schema_context("acme"):
        BackgroundJob.objects.create(
            kind="publish", label="Publish “Acme spring news”", status="failed",
            reason="No page with id 999.",
        )  # fmt: skip
    with schema_context("globex"):
        BackgroundJob.objects.create(kind="publish", label="Publish “Globex secret”")

    response = admin_client.get("/admin/content/jobs/")

    assert response.status_code == 200
    body = response.content.decode()
    assert "Acme spring news" in body
    assert "No page with id 999." in body
    assert "Failed" in body
    assert "Globex secret" not in body
    assert "/admin/content/jobs/" in admin_client.get("/admin/").content.decode()


def test_publish_jobs_over_the_hourly_allowance_are_refused(admin_client):
    call_command("plans", "update", "pro", "--limit", "publish_jobs_per_hour=2")
    url = f"/admin/content/publish-in-background/{_home_id()}/"
    with schema_context("acme"):
        before = BackgroundJob.objects.filter(kind="publish").count()

    for _ in range(2):
        assert admin_client.post(url, {"action": "publish"}).status_code == 302
    refused = admin_client.post(url, {"action": "publish"})

    assert refused.status_code == 302
    assert refused.url == url
    texts = [str(m) for m in get_messages(refused.wsgi_request)]
    assert any("allows 2 publish jobs per hour" in text for text in texts), texts
    with schema_context("acme"):
        assert BackgroundJob.objects.filter(kind="publish").count() == before + 2


def test_unknown_action_is_refused_with_a_message(admin_client):
    url = f"/admin/content/publish-in-background/{_home_id()}/"
    with schema_context("acme"):
        before = BackgroundJob.objects.count()

    response = admin_client.post(url, {"action": "delete-everything"}, follow=True)

    assert response.status_code == 200
    assert "Unknown action" in response.content.decode()
    with schema_context("acme"):
        assert BackgroundJob.objects.count() == before


def test_jobs_cannot_be_queued_outside_a_tenant():
    connection.set_schema_to_public()
    with pytest.raises(NoTenant):
        enqueue_job(kind="publish", args={"page_id": 1})
