"""Quotas in the admin: a clear message, nothing deleted, growth blocked."""

import io
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context
from PIL import Image as PILImage
from wagtail.documents.models import Document
from wagtail.images.models import Image
from wagtail.models import Page, Site

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(acme_client):
    assert (
        acme_client.post(
            "/admin/login/", {"username": "admin", "password": "acme-admin-demo"}
        ).status_code
        == 302
    )
    return acme_client


def _home_id() -> int:
    with schema_context("acme"):
        return Site.objects.get(is_default_site=True).root_page_id


def _limit(name: str, value: int) -> None:
    call_command("plans", "update", "pro", "--limit", f"{name}={value}")


def test_creating_a_page_over_the_quota_is_refused_with_a_message(admin_client):
    home = _home_id()
    with schema_context("acme"):
        pages = Page.objects.count()
    _limit("max_pages", 1)

    response = admin_client.get(
        f"/admin/pages/add/content/articlepage/{home}/", follow=True
    )

    assert "allows 1 pages" in response.content.decode()
    with schema_context("acme"):
        assert Page.objects.count() == pages  # nothing deleted by the downgrade
    assert admin_client.get("/").status_code == 200  # existing pages still served


def test_page_creation_works_under_the_quota(admin_client):
    response = admin_client.get(f"/admin/pages/add/content/articlepage/{_home_id()}/")

    assert response.status_code == 200
    assert "allows" not in response.content.decode()


def test_adding_a_user_over_the_quota_is_refused(admin_client):
    _limit("max_users", 2)  # acme has admin and editor

    response = admin_client.get("/admin/users/new/", follow=True)

    assert "allows 2 users" in response.content.decode()


def _png_upload(size: int) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    PILImage.new("RGB", (size, size), (10, 20, 30)).save(buffer, "PNG")
    return SimpleUploadedFile("big.png", buffer.getvalue(), content_type="image/png")


def test_upload_over_the_storage_quota_is_refused(admin_client):
    _limit("storage_mb", 0)
    with schema_context("acme"):
        images = Image.objects.count()

    response = admin_client.post(
        "/admin/images/multiple/add/",
        {"files[]": _png_upload(16)},
        HTTP_X_REQUESTED_WITH="XMLHttpRequest",
    )

    # Wagtail's multiple upload reports a refused file in its JSON (status 200)
    assert response.json()["success"] is False
    assert "MB of uploads" in response.json()["error_message"]
    with schema_context("acme"):
        assert Image.objects.count() == images


def _document(megabytes: float) -> SimpleUploadedFile:
    size = int(megabytes * 1024 * 1024)
    return SimpleUploadedFile("notes.txt", b"x" * size, content_type="text/plain")


def test_a_file_over_the_plans_upload_size_is_refused_with_a_message(admin_client):
    _limit("max_upload_mb", 1)
    with schema_context("acme"):
        documents = Document.objects.count()

    response = admin_client.post(
        "/admin/documents/add/",
        {"title": "Too big", "file": _document(1.2)},
        follow=True,
    )

    assert "accepts files of up to 1 MB; this one has 1.2 MB" in (
        response.content.decode()
    )
    with schema_context("acme"):
        assert Document.objects.count() == documents


def test_a_file_within_the_plans_upload_size_is_stored(admin_client):
    _limit("max_upload_mb", 1)

    response = admin_client.post(
        "/admin/documents/add/", {"title": "Fits", "file": _document(0.5)}
    )

    assert response.status_code == 302
    with schema_context("acme"):
        document = Document.objects.get(title="Fits")
        path = document.file.path
        assert "/tenants/acme/" in path
    os.unlink(path)
    connection.set_schema_to_public()
