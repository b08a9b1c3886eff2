"""Every door that stores an upload checks the plan (per-file size, storage quota):
the choosers' upload tabs, the edit views replacing a file, the multiple upload, and
an import - not only the admin's add views."""

import io
import os

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context
from PIL import Image as PILImage
from wagtail.documents.models import Document
from wagtail.images.models import Image
from wagtail.models import Collection

from tenants.errors import TenantError
from tenants.provisioning.portability import tenant_export, tenant_import

pytestmark = pytest.mark.django_db

SIZE_REFUSAL = "accepts files of up to 1 MB"
STORAGE_REFUSAL = "MB of uploads"


@pytest.fixture
def admin_client(acme_admin_client):
    return acme_admin_client


def _limit(name: str, value: int) -> None:
    call_command("plans", "update", "pro", "--limit", f"{name}={value}")


def _png(size: int = 16) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    PILImage.new("RGB", (size, size), (10, 20, 30)).save(buffer, "PNG")
    return SimpleUploadedFile("door.png", buffer.getvalue(), content_type="image/png")


def _text(megabytes: float, name: str = "door.txt") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, b"x" * int(megabytes * 1048576), "text/plain")


def _root_collection() -> int:
    with schema_context("acme"):
        return Collection.get_first_root_node().pk


def _counts() -> tuple[int, int]:
    with schema_context("acme"):
        counts = Image.objects.count(), Document.objects.count()
    connection.set_schema_to_public()
    return counts


def test_image_chooser_upload_checks_the_storage_quota(admin_client):
    _limit("storage_mb", 0)
    before = _counts()

    response = admin_client.post(
        "/admin/images/chooser/create/",
        {
            "image-chooser-upload-title": "Door",
            "image-chooser-upload-file": _png(),
            "image-chooser-upload-collection": _root_collection(),
        },
    )

    assert STORAGE_REFUSAL in response.content.decode()
    assert _counts() == before


def test_document_chooser_upload_checks_the_file_size(admin_client):
    _limit("max_upload_mb", 1)
    before = _counts()

    response = admin_client.post(
        "/admin/documents/chooser/create/",
        {
            "document-chooser-upload-title": "Door",
            "document-chooser-upload-file": _text(1.2),
            "document-chooser-upload-collection": _root_collection(),
        },
    )

    assert SIZE_REFUSAL in response.content.decode()
    assert _counts() == before


@pytest.fixture
def small_document():
    with schema_context("acme"):
        document = Document.objects.create(
            title="Small", file=ContentFile(b"small", name="small.txt")
        )
        found = document.pk, document.file.name, document.file.path
    connection.set_schema_to_public()
    yield found
    if os.path.exists(found[2]):
        os.unlink(found[2])


@pytest.mark.parametrize(
    "limit, size_mb, refusal",
    [("max_upload_mb", 1.2, SIZE_REFUSAL), ("storage_mb", 1.5, STORAGE_REFUSAL)],
    ids=["file size", "storage quota"],
)
def test_replacing_a_file_on_edit_is_checked(
    admin_client, small_document, limit, size_mb, refusal
):
    document_id, name, _ = small_document
    _limit(limit, 1)

    response = admin_client.post(
        f"/admin/documents/edit/{document_id}/",
        {"title": "Small", "file": _text(size_mb), "collection": _root_collection()},
    )

    assert refusal in response.content.decode()
    with schema_context("acme"):
        assert Document.objects.get(pk=document_id).file.name == name


def test_multiple_upload_reports_the_refusal_on_the_file(admin_client):
    _limit("storage_mb", 0)
    before = _counts()

    response = admin_client.post(
        "/admin/images/multiple/add/",
        {"files[]": _png()},
        HTTP_X_REQUESTED_WITH="XMLHttpRequest",
    )

    assert response.json()["success"] is False
    assert STORAGE_REFUSAL in response.json()["error_message"]
    assert _counts() == before


def test_an_import_over_the_plans_upload_size_is_refused(small_document, tmp_path):
    archive = tmp_path / "acme.tar.gz"
    tenant_export(slug="acme", output=archive)
    call_command(
        "plans", "update", "starter", "--limit", "max_upload_mb=0"
    )  # every file is larger than 0 MB

    with pytest.raises(TenantError, match="accepts files of up to 0 MB"):
        tenant_import(
            archive_path=archive,
            slug="acme_over",
            domains=["over.localhost"],
            plan="starter",
        )
