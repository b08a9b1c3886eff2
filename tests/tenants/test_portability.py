"""Export a tenant to an archive and restore it completely, under a new slug too."""

import io
import os
import shutil
import tarfile

import pytest
from django.contrib.auth import get_user_model
from django.core.files.images import ImageFile
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context, schema_exists
from PIL import Image as PILImage
from wagtail.images.models import Image
from wagtail.models import Page, Site

from tenants.errors import TenantError
from tenants.models import Domain, Tenant
from tenants.provisioning.portability import ArchiveError, tenant_export, tenant_import
from tests.media import tenant_media_dir

pytestmark = pytest.mark.django_db


def _snapshot(schema: str) -> dict:
    with schema_context(schema):
        return {
            "pages": sorted(
                Page.objects.values_list("pk", "title", "slug", "live", "depth")
            ),
            "users": sorted(
                get_user_model().objects.values_list("pk", "username", "password")
            ),
            "images": sorted(Image.objects.values_list("pk", "title", "file")),
            "site_root": Site.objects.get(is_default_site=True).root_page_id,
        }


@pytest.fixture
def acme_with_image():
    buffer = io.BytesIO()
    PILImage.new("RGB", (4, 4), (1, 2, 3)).save(buffer, "PNG")
    with schema_context("acme"):
        image = Image.objects.create(
            title="Export me", file=ImageFile(io.BytesIO(buffer.getvalue()), "exp.png")
        )
        path = image.file.path
    yield image
    connection.set_schema_to_public()
    os.unlink(path)


def test_round_trip_under_a_new_slug(acme_with_image, tmp_path, acme_client):
    archive = tmp_path / "acme.tar.gz"

    summary = tenant_export(slug="acme", output=archive)
    tenant_import(archive_path=archive, slug="acme_copy", domains=["copy.localhost"])

    assert summary.tables > 40  # every Wagtail and content table
    assert summary.media_files >= 1
    original, restored = _snapshot("acme"), _snapshot("acme_copy")
    assert restored == original
    with schema_context("acme_copy"):
        assert Site.objects.get(is_default_site=True).hostname == "copy.localhost"
        image = Image.objects.get(title="Export me")
        with open(image.file.path, "rb") as restored_file:
            assert restored_file.read().startswith(b"\x89PNG")
        assert "/tenants/acme_copy/" in image.file.path
    connection.set_schema_to_public()
    copy = Client(HTTP_HOST="copy.localhost").get("/acme-launches-the-mark-iv/")
    assert copy.status_code == 200
    assert Tenant.objects.get(schema_name="acme_copy").plan.name == "pro"
    # the restored editor can log in at the new domain
    login = Client(HTTP_HOST="copy.localhost").post(
        "/admin/login/", {"username": "editor", "password": "acme-editor-demo"}
    )
    assert login.status_code == 302
    shutil.rmtree(tenant_media_dir("acme_copy"), ignore_errors=True)


def test_import_with_a_taken_domain_leaves_nothing(tmp_path):
    archive = tmp_path / "globex.tar.gz"
    tenant_export(slug="globex", output=archive)

    with pytest.raises(TenantError, match="already belongs"):
        tenant_import(archive_path=archive, slug="globex2", domains=["acme.localhost"])

    assert not Tenant.objects.filter(schema_name="globex2").exists()
    assert not schema_exists("globex2")


def test_garbage_archive_is_refused_clearly(tmp_path):
    bogus = tmp_path / "bogus.tar.gz"
    bogus.write_bytes(b"not a tarball")
    empty = tmp_path / "empty.tar.gz"
    with tarfile.open(empty, "w:gz"):
        pass

    with pytest.raises(ArchiveError, match="Cannot read"):
        tenant_import(archive_path=bogus, slug="x1", domains=["x1.localhost"])
    with pytest.raises(ArchiveError, match="no manifest"):
        tenant_import(archive_path=empty, slug="x1", domains=["x1.localhost"])
    with pytest.raises(ArchiveError, match="No such archive"):
        tenant_import(
            archive_path=tmp_path / "missing.tar.gz", slug="x1", domains=["x.localhost"]
        )
    assert not Domain.objects.filter(domain__startswith="x1.").exists()
