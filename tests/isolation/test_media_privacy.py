"""Uploaded files on the tenant's origin: documents of a restricted collection only
through Wagtail's checked view, and nothing a browser could run served inline."""

from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django_tenants.utils import schema_context
from wagtail.documents.models import Document
from wagtail.models import Collection, CollectionViewRestriction

from tests.media import tenant_media_dir


@pytest.fixture
def private_document(twins):
    """A document of acme in a collection for signed-in users only."""
    acme, _ = twins
    with schema_context(acme.schema):
        collection = Collection.get_first_root_node().add_child(name="Private")
        CollectionViewRestriction.objects.create(
            collection=collection,
            restriction_type=CollectionViewRestriction.LOGIN,
        )
        document = Document.objects.create(
            title="Board minutes",
            file=ContentFile(acme.secret.encode(), name="minutes.txt"),
            collection=collection,
        )
        found = (document.pk, document.file.url, document.url, Path(document.file.path))
    connection.set_schema_to_public()
    yield found
    found[3].unlink(missing_ok=True)


@pytest.fixture
def planted(twins):
    """Files a browser would run, stored in acme's media folder (as an upload that
    slipped past a check, or an import, would leave them)."""
    acme, _ = twins
    folder = tenant_media_dir(acme.schema) / "original_images"
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "evil.html": b"<script>document.title='owned'</script>",
        "evil.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script>1</script></svg>',
        "evil.xml": b"<?xml version='1.0'?><x/>",
    }
    for name, body in files.items():
        (folder / name).write_bytes(body)
    yield acme, [f"/media/tenants/{acme.schema}/original_images/{n}" for n in files]
    for name in files:
        (folder / name).unlink(missing_ok=True)


def test_restricted_document_is_refused_on_the_media_route(twins, private_document):
    acme, _ = twins
    _, media_url, checked_url, _ = private_document

    media = acme.client().get(media_url)
    traversal = acme.client().get(
        media_url.replace("/documents/", "/images/../documents/")
    )
    checked = acme.client().get(checked_url)

    assert media.status_code == 404
    assert traversal.status_code == 404
    assert checked.status_code == 302  # Wagtail's view asks for a login
    assert "/_util/login/" in checked["Location"]


def test_restricted_document_is_served_through_the_checked_view_after_login(
    twins, private_document
):
    acme, _ = twins
    _, media_url, checked_url, _ = private_document
    client = acme.admin_client()

    response = client.get(checked_url)

    assert response.status_code == 200
    assert b"".join(response.streaming_content).decode() == acme.secret
    assert "sandbox" in response["Content-Security-Policy"]
    assert client.get(media_url).status_code == 404  # still only there


def test_public_document_media_is_served_sandboxed(twins):
    acme, _ = twins
    response = acme.client().get(acme.document_url)  # Wagtail's view
    with schema_context(acme.schema):
        media_url = Document.objects.get(pk=acme.document_id).file.url
    connection.set_schema_to_public()
    media = acme.client().get(media_url)

    for answer in (response, media):
        assert answer.status_code == 200
        assert "sandbox" in answer["Content-Security-Policy"]
        assert answer["X-Content-Type-Options"] == "nosniff"
    assert b"".join(media.streaming_content).decode() == acme.secret


def test_files_a_browser_could_run_are_attachments(planted):
    acme, urls = planted
    for url in urls:
        response = acme.client().get(url)
        assert response.status_code == 200, url
        assert response["Content-Disposition"].startswith("attachment"), url
        assert "sandbox" in response["Content-Security-Policy"], url
        assert "script-src" not in response["Content-Security-Policy"]


def test_images_stay_inline(twins):
    acme, _ = twins
    response = acme.client().get(acme.image_url)
    assert response.status_code == 200
    assert "attachment" not in response.get("Content-Disposition", "")
    assert "sandbox" in response["Content-Security-Policy"]
