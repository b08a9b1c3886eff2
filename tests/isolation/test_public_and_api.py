"""Visitors and API clients see only the tenant whose host they asked."""

import pytest

from tests.isolation.conftest import (
    TWIN_SLUG,
    assert_nothing_of,
    assert_only_own,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(params=[0, 1], ids=["at-acme", "at-globex"])
def pair(request, twins):
    """(own, other): every test runs once from each side."""
    own = twins[request.param]
    return own, twins[1 - request.param]


def test_pages_home_and_404(pair):
    own, other = pair
    client = own.client()

    article = client.get(f"/{TWIN_SLUG}/")
    home = client.get("/")
    missing = client.get(f"/{other.schema}-only-{TWIN_SLUG}/")

    assert article.status_code == 200
    assert_only_own(article.content.decode(), own, other, where="article page")
    assert_nothing_of(home.content.decode(), other, where="home page")
    assert missing.status_code == 404
    assert_nothing_of(missing.content.decode(), other, where="404 page")


def test_article_image_renders_from_own_media(pair):
    own, other = pair

    body = own.client().get(f"/{TWIN_SLUG}/").content.decode()

    assert f"/media/tenants/{own.schema}/images/twin" in body


def test_redirects_go_to_own_target(pair):
    own, _ = pair

    response = own.client().get("/old-twin")

    assert response.status_code in (301, 302)
    assert response["Location"].endswith(f"/{own.schema}-moved/")


def test_drafts_are_not_public_anywhere(pair):
    own, other = pair

    for client in (own.client(), other.client()):
        assert client.get("/twin-draft/").status_code == 404


def test_api_listing_detail_find_and_search(pair):
    own, other = pair
    client = own.client()

    listing = client.get("/api/v2/pages/", {"type": "content.ArticlePage"})
    detail = client.get(f"/api/v2/pages/{own.article_id}/")
    found = client.get("/api/v2/pages/find/", {"html_path": f"/{TWIN_SLUG}/"})
    search = client.get("/api/v2/pages/", {"search": other.secret})

    titles = [item["meta"]["html_url"] for item in listing.json()["items"]]
    assert all(own.host in url for url in titles), titles
    assert_nothing_of(listing.content.decode(), other, where="API listing")
    assert detail.status_code == 200
    assert_only_own(detail.content.decode(), own, other, where="API detail")
    assert detail.json()["meta"]["html_url"].startswith(f"http://{own.host}")
    assert found.status_code in (200, 302)
    if found.status_code == 302:
        found = client.get(found["Location"])
    assert found.json()["id"] == own.article_id
    assert search.json()["items"] == []


def test_api_ids_of_the_other_tenant_give_nothing(pair):
    own, other = pair
    own_ids = {
        item["id"] for item in own.client().get("/api/v2/pages/").json()["items"]
    }
    foreign_ids = {
        item["id"]
        for item in other.client().get("/api/v2/pages/").json()["items"]
        if item["id"] not in own_ids
    }

    for page_id in foreign_ids:
        assert own.client().get(f"/api/v2/pages/{page_id}/").status_code == 404


def test_api_images_and_documents(pair):
    own, other = pair
    client = own.client()

    images = client.get("/api/v2/images/", {"fields": "*"})
    image = client.get(f"/api/v2/images/{own.image_id}/")
    documents = client.get("/api/v2/documents/")
    document = client.get(f"/api/v2/documents/{own.document_id}/")

    for response in (images, image, documents, document):
        assert response.status_code == 200
        assert_nothing_of(response.content.decode(), other, where="API media")
    assert f"/media/tenants/{own.schema}/" in image.json()["meta"]["download_url"]
    assert document.json()["meta"]["download_url"].startswith(f"http://{own.host}")


def test_media_url_of_one_tenant_is_refused_on_the_other(pair):
    own, other = pair

    on_own = own.client().get(own.image_url)
    on_other = other.client().get(own.image_url)

    assert on_own.status_code == 200
    assert on_other.status_code == 404
    assert f"/media/tenants/{own.schema}/" in own.image_url


def test_documents_are_served_with_own_bytes(pair):
    own, other = pair

    response = own.client().get(own.document_url)

    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    assert body == own.secret
    # the ids collide, so the other host may serve its own twin: never this one
    elsewhere = other.client().get(own.document_url)
    if elsewhere.status_code == 200:
        assert b"".join(elsewhere.streaming_content).decode() == other.secret
    else:
        assert elsewhere.status_code == 404


def test_files_with_the_same_name_live_in_each_tenants_folder(twins):
    acme, globex = twins

    for twin in twins:
        for path in twin.files:
            assert f"/tenants/{twin.schema}/" in str(path)
            assert path.exists()
    assert {p.name for p in acme.files} == {p.name for p in globex.files}
