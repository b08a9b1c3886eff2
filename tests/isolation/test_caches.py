"""Caches keep tenants apart: the page cache, Wagtail's site root paths and image
renditions, even when both tenants hold an image with the same id and the same bytes.

The last test breaks the cache key function on purpose and shows that the checks then
fail: Wagtail's site root paths are the cached value that leaks first. (Renditions do
not: the storage builds their URLs from the current schema. The page cache keys carry
the host as well.)
"""

import io

import pytest
from django.core.cache import caches
from django.core.files.images import ImageFile
from django.db import connection
from django_redis import get_redis_connection
from django_tenants.utils import schema_context
from PIL import Image as PILImage
from wagtail.images.models import Image
from wagtail.models import Site

from content.models import ArticlePage
from tests.isolation.conftest import TWIN_SLUG, Twin, assert_only_own
from tests.media import tenant_media_dir

pytestmark = pytest.mark.django_db

SAME_IMAGE_ID = 987_654
SAME_SLUG = "same-image"


@pytest.fixture
def same_image(twins):
    """An image with one id and identical bytes in both tenants, shown on a page."""
    buffer = io.BytesIO()
    PILImage.new("RGB", (24, 24), (10, 20, 30)).save(buffer, "PNG")
    for twin in twins:
        with schema_context(twin.schema):
            image = Image.objects.create(
                pk=SAME_IMAGE_ID,
                title="Same",
                file=ImageFile(io.BytesIO(buffer.getvalue()), name="same.png"),
            )
            home = Site.objects.get(is_default_site=True).root_page
            page = ArticlePage(
                title="Same image",
                slug=SAME_SLUG,
                intro=twin.secret,
                body=[("image", {"image": image, "caption": ""})],
            )
            home.add_child(instance=page)
            page.save_revision().publish()
            twin.files.append(tenant_media_dir(twin.schema) / image.file.name)
    connection.set_schema_to_public()
    yield twins
    for twin in twins:
        for rendition in tenant_media_dir(twin.schema).glob("images/same*"):
            rendition.unlink(missing_ok=True)


def check_rendition_urls(twins: tuple[Twin, Twin]) -> None:
    for own, other in (twins, twins[::-1]):
        body = own.client().get(f"/{SAME_SLUG}/").content.decode()
        assert f"/media/tenants/{own.schema}/images/same" in body, own.schema
        assert f"/media/tenants/{other.schema}/" not in body, (
            f"{own.schema} shows {other.schema}'s rendition"
        )


def check_site_root_urls(twins: tuple[Twin, Twin]) -> None:
    for own, _ in (twins, twins[::-1]):
        detail = own.client().get(f"/api/v2/pages/{own.article_id}/").json()
        assert detail["meta"]["html_url"].startswith(f"http://{own.host}"), (
            f"{own.schema}'s page has the URL {detail['meta']['html_url']}"
        )


def check_page_cache(twins: tuple[Twin, Twin]) -> None:
    for own, other in (twins, twins[::-1]):
        first = own.client().get(f"/{TWIN_SLUG}/")
        again = own.client().get(f"/{TWIN_SLUG}/")
        assert again["X-Page-Cache"] == "hit"
        for response in (first, again):
            assert_only_own(response.content.decode(), own, other, where="cache")


def test_caches_keep_tenants_apart(same_image, settings):
    settings.CMS_PAGE_CACHE_SECONDS = 300

    check_rendition_urls(same_image)
    check_site_root_urls(same_image)
    check_page_cache(same_image)


def _key_without_tenant(key: str, key_prefix: str, version: int) -> str:
    return f"{key_prefix}:{version}:{key}"


def test_a_key_function_without_the_tenant_leaks_and_the_checks_catch_it(
    same_image, monkeypatch
):
    monkeypatch.setattr(caches["default"], "key_func", _key_without_tenant)
    redis = get_redis_connection("default")
    for key in redis.scan_iter(match="test:1:wagtail*"):  # left by an earlier run
        redis.delete(key)

    with pytest.raises(AssertionError, match="has the URL"):
        check_site_root_urls(same_image)
