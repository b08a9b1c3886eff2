"""Tenant media in an S3-compatible bucket (moto's S3 server on loopback): every door
that touches a tenant's files works on the bucket as on disk - the admin's upload and
Wagtail's renditions, serving on the tenant's own hosts only, Wagtail's checked
document view, export and import, deletion, an in-place restore and its undo, and a
pod move between a disk and a bucket."""

import io
import subprocess
import sys
import tarfile
import uuid
from io import StringIO

import boto3
import pytest
from django.core.files.images import ImageFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context
from moto.server import ThreadedMotoServer
from PIL import Image as PILImage
from wagtail.documents.models import Document
from wagtail.images.models import Image

from tenants.backups.models import Backup
from tenants.backups.storage import backup_storage
from tenants.media import trees
from tenants.models import Tenant
from tenants.pods import moves
from tenants.pods.directory import Pod
from tenants.provisioning.creation import tenant_create, tenant_delete
from tenants.provisioning.portability import tenant_export, tenant_import
from tests.conftest import ACME_HOST, GLOBEX_HOST
from tests.integration import REPO_ROOT, free_port, process_env
from tests.media import tenant_media_dir

PREFIX = "media"


@pytest.fixture(scope="session")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


class Bucket:
    def __init__(self, endpoint: str, name: str) -> None:
        self.name = name
        self.client = boto3.client("s3", endpoint_url=endpoint)
        self.client.create_bucket(Bucket=name)

    def keys(self, under: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=under
        )
        return sorted(
            item["Key"] for page in pages for item in page.get("Contents", ())
        )

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()


@pytest.fixture
def bucket(s3_endpoint, settings, monkeypatch) -> Bucket:
    """A fresh bucket as this process's default storage (CMS_MEDIA_S3_*)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    created = Bucket(s3_endpoint, f"cms-media-{uuid.uuid4().hex[:10]}")
    settings.CMS_MEDIA_S3_BUCKET = created.name
    settings.CMS_MEDIA_S3_ENDPOINT = s3_endpoint
    settings.CMS_MEDIA_S3_PREFIX = PREFIX
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "tenants.media.storage.TenantS3Storage",
            "OPTIONS": {
                "bucket_name": created.name,
                "endpoint_url": s3_endpoint,
                "location": PREFIX,
                "default_acl": None,
                "file_overwrite": False,
            },
        },
    }
    return created


def _png_bytes(colour=(10, 20, 30)) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (24, 24), colour).save(buffer, "PNG")
    return buffer.getvalue()


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.fixture
def admin_client(acme_admin_client) -> Client:
    return acme_admin_client


@pytest.mark.django_db
def test_an_admin_upload_lands_in_the_bucket_and_is_served_only_on_its_tenant(
    bucket, admin_client
):
    png = _png_bytes()
    response = admin_client.post(
        "/admin/images/multiple/add/",
        {"files[]": SimpleUploadedFile("bucketed.png", png, "image/png")},
        HTTP_X_REQUESTED_WITH="XMLHttpRequest",
    )
    assert response.json()["success"] is True, response.json()
    with schema_context("acme"):
        image = Image.objects.get(pk=response.json()["image_id"])
        rendition_url = image.get_rendition("fill-10x10").url
        name, url = image.file.name, image.file.url
    connection.set_schema_to_public()

    keys = bucket.keys()
    assert f"{PREFIX}/tenants/acme/{name}" in keys
    assert bucket.read(f"{PREFIX}/tenants/acme/{name}") == png
    assert any(key.startswith(f"{PREFIX}/tenants/acme/images/") for key in keys)
    assert not (tenant_media_dir("acme") / name).exists()  # nothing on this disk
    assert url == f"/media/tenants/acme/{name}"

    visitor = Client(HTTP_HOST=ACME_HOST)
    served = visitor.get(url)
    assert served.status_code == 200
    assert _body(served) == png
    assert served["Content-Type"] == "image/png"
    assert "sandbox" in served["Content-Security-Policy"]
    assert served["X-Content-Type-Options"] == "nosniff"
    assert visitor.get(rendition_url).status_code == 200
    assert Client(HTTP_HOST=GLOBEX_HOST).get(url).status_code == 404
    assert (
        visitor.get("/media/tenants/acme/original_images/none.png").status_code == 404
    )
    assert visitor.get("/media/tenants/acme/../globex/x.png").status_code == 404
    # two uploads of the same file name keep both (no overwrite, as on disk)
    admin_client.post(
        "/admin/images/multiple/add/",
        {"files[]": SimpleUploadedFile("bucketed.png", _png_bytes((1, 2, 3)))},
        HTTP_X_REQUESTED_WITH="XMLHttpRequest",
    )
    assert bucket.read(f"{PREFIX}/tenants/acme/{name}") == png


@pytest.mark.django_db
def test_a_document_in_the_bucket_is_served_by_wagtails_checked_view_not_redirected(
    bucket, admin_client
):
    with schema_context("acme"):
        document = Document.objects.create(
            title="Bucketed", file=SimpleUploadedFile("minutes.html", b"<b>hi</b>")
        )
        checked_url, name = document.url, document.file.name
    connection.set_schema_to_public()
    assert f"{PREFIX}/tenants/acme/{name}" in bucket.keys()

    response = Client(HTTP_HOST=ACME_HOST).get(checked_url)

    assert response.status_code == 200  # streamed, not a redirect to the bucket
    assert _body(response) == b"<b>hi</b>"
    assert response["Content-Disposition"].startswith("attachment")
    media = Client(HTTP_HOST=ACME_HOST).get(f"/media/tenants/acme/{name}")
    assert media.status_code == 200
    assert media["Content-Disposition"].startswith("attachment")  # HTML never inline


@pytest.mark.django_db
def test_export_import_and_delete_carry_the_tenants_files_in_the_bucket(
    bucket, tmp_path
):
    png = _png_bytes((200, 0, 0))
    with schema_context("acme"):
        image = Image.objects.create(
            title="Exported", file=ImageFile(io.BytesIO(png), name="exported.png")
        )
        name = image.file.name
    connection.set_schema_to_public()
    archive = tmp_path / "acme.tar.gz"

    summary = tenant_export(slug="acme", output=archive)

    assert summary.media_files == 1
    with tarfile.open(archive) as opened:
        assert opened.extractfile(f"media/{name}").read() == png
    tenant_import(archive_path=archive, slug="acme_s3", domains=["acme-s3.localhost"])
    assert bucket.read(f"{PREFIX}/tenants/acme_s3/{name}") == png
    served = Client(HTTP_HOST="acme-s3.localhost").get(f"/media/tenants/acme_s3/{name}")
    assert served.status_code == 200 and _body(served) == png
    assert not [key for key in bucket.keys() if "/tenants/." in key]  # no staging left

    tenant_delete(slug="acme_s3", confirm=True)

    assert bucket.keys(f"{PREFIX}/tenants/acme_s3/") == []
    assert bucket.keys(f"{PREFIX}/tenants/acme/") == [f"{PREFIX}/tenants/acme/{name}"]


def test_an_archive_path_outside_the_tree_is_refused(bucket, tmp_path):
    staging = trees.tree(".import-check")
    with pytest.raises(trees.MediaError, match="unsafe media path"):
        trees.write(staging, "../globex/evil.png", io.BytesIO(b"x"))
    assert bucket.keys() == []


SLUG = "bucketed"
HOST = "bucketed.localhost"


@pytest.fixture
def committed_tenant(django_db_setup, django_db_blocker, bucket, settings):
    # backups in the bucket too (CMS_BACKUP_S3_BUCKET)
    settings.STORAGES = {
        **settings.STORAGES,
        "backups": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket.name,
                "endpoint_url": settings.CMS_MEDIA_S3_ENDPOINT,
                "location": "backups",
                "default_acl": "private",
                "file_overwrite": False,
            },
        },
    }
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        if Tenant.objects.filter(schema_name=SLUG).exists():
            tenant_delete(slug=SLUG, confirm=True)
        tenant_create(slug=SLUG, name="Bucketed", domains=[HOST], plan="pro")
        connection.set_schema_to_public()
        yield bucket
        connection.set_schema_to_public()
        for backup in Backup.objects.filter(tenant_schema=SLUG):
            backup_storage().delete(backup.storage_name)
        Backup.objects.filter(tenant_schema=SLUG).delete()
        tenant_delete(slug=SLUG, confirm=True)


def _upload(title: str, png: bytes) -> str:
    with schema_context(SLUG):
        image = Image.objects.create(
            title=title, file=ImageFile(io.BytesIO(png), name=f"{title}.png")
        )
        name = image.file.name
    connection.set_schema_to_public()
    return name


def _titles() -> list[str]:
    with schema_context(SLUG):
        titles = sorted(Image.objects.values_list("title", flat=True))
    connection.set_schema_to_public()
    return titles


def test_a_backup_in_the_bucket_restores_and_undoes_the_files_in_the_bucket(
    committed_tenant,
):
    bucket = committed_tenant
    live = f"{PREFIX}/tenants/{SLUG}/"
    kept_png, later_png = _png_bytes((0, 90, 0)), _png_bytes((0, 0, 90))
    kept = _upload("kept", kept_png)
    call_command("tenants", "backup", SLUG, stdout=StringIO())
    backup = Backup.objects.filter(tenant_schema=SLUG).latest("id")
    assert bucket.keys("backups/") == [f"backups/{backup.storage_name}"]
    later = _upload("later", later_png)
    assert bucket.keys(live) == sorted([live + kept, live + later])

    out = StringIO()
    call_command("tenants", "restore", SLUG, "--backup", str(backup.pk), stdout=out)

    assert _titles() == ["kept"]
    assert bucket.keys(live) == [live + kept]  # the later upload is gone from live
    assert bucket.read(live + kept) == kept_png
    served = Client(HTTP_HOST=HOST).get(f"/media/tenants/{SLUG}/{kept}")
    assert served.status_code == 200 and _body(served) == kept_png
    assert [key for key in bucket.keys() if "/.previous-" in key]  # kept for undo

    call_command("tenants", "restore", SLUG, "--undo", stdout=StringIO())

    assert _titles() == ["kept", "later"]
    assert bucket.keys(live) == sorted([live + kept, live + later])
    assert bucket.read(live + later) == later_png
    assert not [
        key for key in bucket.keys() if "/.restore-" in key or "/.undone-" in key
    ]


def test_a_move_copies_files_from_a_pods_disk_into_anothers_bucket(bucket, tmp_path):
    png = _png_bytes((5, 5, 5))
    folder = tmp_path / "tenants" / "mover" / "original_images"
    folder.mkdir(parents=True)
    (folder / "moved.png").write_bytes(png)
    on_disk = Pod("pod1", "", "", "", "active", media_root=str(tmp_path))
    in_bucket = Pod("pod2", "", "", "", "active", media_root=trees.location())

    moves._copy_media(on_disk, in_bucket, "mover")

    key = f"{PREFIX}/tenants/mover/original_images/moved.png"
    assert bucket.keys() == [key] and bucket.read(key) == png
    # both pods on the same bucket: nothing to copy, nothing to remove
    assert moves._media_trees(in_bucket, in_bucket, "mover") is None
    moves._copy_media(in_bucket, on_disk, "mover")  # and back, onto the disk
    assert (folder / "moved.png").read_bytes() == png


def test_the_environment_puts_a_process_s_media_in_the_bucket(db):
    """CMS_MEDIA_S3_* as an operator sets them, read by a fresh process."""
    check = (
        "from django.core.files.storage import default_storage as s;"
        "from tenants.media import trees;"
        "location = s.location;"
        "print(type(s._wrapped).__name__, s.bucket_name, location, trees.location())"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--verbosity", "0", "-c", check],
        cwd=REPO_ROOT,
        env=process_env(CMS_MEDIA_S3_BUCKET="site-media", CMS_MEDIA_S3_PREFIX="m"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "TenantS3Storage",
        "site-media",
        "m/tenants/public",
        "s3://site-media/m",
    ]
