"""Uploads are stored per tenant and served only on the owning tenant's hosts."""

import io
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.images import ImageFile
from django.db import connection
from django_tenants.utils import schema_context
from PIL import Image as PILImage
from wagtail.images.models import Image

pytestmark = pytest.mark.django_db


def _png(name: str) -> ImageFile:
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8), (200, 30, 30)).save(buffer, "PNG")
    return ImageFile(io.BytesIO(buffer.getvalue()), name=name)


@pytest.fixture
def acme_image():
    with schema_context("acme"):
        image = Image.objects.create(title="Logo", file=_png("logo.png"))
        path = Path(image.file.path)
        url = image.file.url
    yield path, url
    path.unlink(missing_ok=True)


def test_upload_lands_in_the_tenant_media_folder(acme_image):
    path, url = acme_image

    tenant_root = Path(settings.MEDIA_ROOT) / "tenants" / "acme"
    assert tenant_root in path.parents
    assert path.exists()
    assert url.startswith("/media/tenants/acme/")


def test_media_url_is_served_only_on_its_tenant(acme_image, acme_client, globex_client):
    _, url = acme_image

    own = acme_client.get(url)
    foreign = globex_client.get(url)

    assert own.status_code == 200
    assert b"".join(own.streaming_content).startswith(b"\x89PNG")
    assert foreign.status_code == 404


def test_path_traversal_is_refused(acme_client):
    response = acme_client.get("/media/tenants/acme/../globex/secret.png")

    assert response.status_code == 404
    assert connection.schema_name == "public"
