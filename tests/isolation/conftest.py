"""Two tenants holding colliding content: the same slugs, titles, file names, user
names and redirect paths, each carrying a secret only its own tenant may ever show.

Every isolation test asks one surface for the colliding thing on each host and checks
that the answer carries that host's secret and never the other's.
"""

import hashlib
import io
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.images import ImageFile
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context
from PIL import Image as PILImage
from wagtail.contrib.redirects.models import Redirect
from wagtail.documents.models import Document
from wagtail.images.models import Image
from wagtail.models import Site
from wagtail.search import index

from content.models import ArticlePage
from tests.conftest import ACME_HOST, GLOBEX_HOST
from tests.media import tenant_media_dir

TWIN_SLUG = "twin"
TWIN_TITLE = "Twin"
TWIN_USER = "twin"


@dataclass
class Twin:
    """What one tenant holds of the colliding content."""

    schema: str
    host: str
    secret: str
    password: str
    article_id: int = 0
    draft_id: int = 0
    image_id: int = 0
    image_url: str = ""
    document_id: int = 0
    document_url: str = ""
    files: list[Path] = field(default_factory=list)

    def client(self) -> Client:
        return Client(HTTP_HOST=self.host)

    def admin_client(self) -> Client:
        client = self.client()
        # through the real login form: Client.login would bypass the tenant gate
        response = client.post(
            "/admin/login/", {"username": TWIN_USER, "password": self.password}
        )
        assert response.status_code == 302, f"login at {self.host} failed"
        return client


def _letters_only(hex_digits: str) -> str:
    """PostgreSQL's search parser reads a term like '21e60c33' as the number 21e60
    followed by a word, so a hex secret would sometimes not be found by search."""
    return hex_digits.translate(str.maketrans("0123456789abcdef", "ghijklmnopqrstuv"))


def _png(secret: str) -> ImageFile:
    buffer = io.BytesIO()
    colour = tuple(hashlib.sha256(secret.encode()).digest()[:3])
    PILImage.new("RGB", (16, 16), colour).save(buffer, "PNG")
    return ImageFile(io.BytesIO(buffer.getvalue()), name="twin.png")


def _create_twin(schema: str, host: str) -> Twin:
    twin = Twin(
        schema=schema,
        host=host,
        secret=f"secret-{schema}-{_letters_only(uuid.uuid4().hex)}",
        password=f"{schema}-twin-password-9",
    )
    with schema_context(schema):
        home = Site.objects.get(is_default_site=True).root_page
        image = Image.objects.create(title=TWIN_TITLE, file=_png(twin.secret))
        document = Document.objects.create(
            title=TWIN_TITLE,
            file=ContentFile(twin.secret.encode(), name="twin.txt"),
        )
        article = ArticlePage(
            title=TWIN_TITLE,
            slug=TWIN_SLUG,
            intro=twin.secret,
            body=[
                ("paragraph", f"<p>{twin.secret}</p>"),
                ("image", {"image": image, "caption": twin.secret}),
            ],
        )
        home.add_child(instance=article)
        article.save_revision().publish()
        # Wagtail indexes after commit, which a test transaction never reaches
        index.insert_or_update_object(article)
        draft = ArticlePage(
            title=f"{TWIN_TITLE} draft", slug="twin-draft", intro=twin.secret
        )
        home.add_child(instance=draft)
        draft.live = False
        draft.save_revision()
        draft.save()
        Redirect.objects.create(old_path="/old-twin", redirect_link=f"/{schema}-moved/")
        get_user_model().objects.create_user(
            TWIN_USER,
            email=f"{TWIN_USER}@example.com",
            password=twin.password,
            is_staff=True,
            is_superuser=True,
        )
        twin.article_id, twin.draft_id = article.pk, draft.pk
        twin.image_id, twin.image_url = image.pk, image.file.url
        twin.document_id, twin.document_url = document.pk, document.url
        twin.files = [Path(image.file.path), Path(document.file.path)]
    connection.set_schema_to_public()
    return twin


@pytest.fixture
def twins(db) -> tuple[Twin, Twin]:
    acme = _create_twin("acme", ACME_HOST)
    globex = _create_twin("globex", GLOBEX_HOST)
    yield acme, globex
    connection.set_schema_to_public()
    for twin in (acme, globex):
        for path in twin.files:
            path.unlink(missing_ok=True)
        for rendition in tenant_media_dir(twin.schema).glob("images/twin*"):
            rendition.unlink(missing_ok=True)


def assert_only_own(body: str, own: Twin, other: Twin, *, where: str) -> None:
    """The answer shows this tenant's secret and nothing that names the other."""
    assert own.secret in body, f"{where}: own content missing at {own.host}"
    assert_nothing_of(body, other, where=where)


def assert_nothing_of(body: str, other: Twin, *, where: str) -> None:
    leaks = [
        mark
        for mark in (other.secret, f"tenants/{other.schema}/", other.host)
        if mark in body
    ]
    assert not leaks, f"{where}: {other.schema}'s {leaks} leaked into the answer"
