"""A NUL character in a request's path or query never reaches PostgreSQL (whose text
cannot hold one: psycopg raises DataError, a 500): every door answers 400 saying
why - the content API's filters and search, the site search, the admin's search and
listings, a page path. Bodies are refused by their fields: the write API's JSON and
the admin's forms."""

import json

import pytest

pytestmark = pytest.mark.django_db

API_DOORS = [
    "/api/v2/pages/?search=%00",
    "/api/v2/pages/?slug=a%00b",
    "/api/v2/pages/?title=%00",
    "/api/v2/pages/?html_path=/%00/",
    "/api/v2/images/?search=%00",
    "/api/v2/documents/?title=%00",
    "/api/v2/pages/find/?html_path=/%00",
]
SITE_DOORS = [
    "/search/?q=canyon%00",
    "/acme-%00launches/",
    "/?utm%00=1",
]
ADMIN_DOORS = [
    "/admin/pages/search/?q=%00",
    "/admin/images/?q=%00",
    "/admin/documents/?q=%00",
    "/admin/users/?q=%00",
    "/admin/choose-page/search/?q=%00",
]


@pytest.mark.parametrize("url", API_DOORS)
def test_the_api_answers_a_nul_with_a_readable_400(acme_client, url):
    response = acme_client.get(url)

    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    assert "NUL" in response.json()["message"]


@pytest.mark.parametrize("url", SITE_DOORS)
def test_a_visitor_sending_a_nul_gets_a_400_page(acme_client, url):
    response = acme_client.get(url)

    assert response.status_code == 400, response.content[:300]
    assert "NUL" in response.content.decode()


@pytest.mark.parametrize("url", ADMIN_DOORS)
def test_an_editor_sending_a_nul_gets_a_400(acme_admin_client, url):
    response = acme_admin_client.get(url)

    assert response.status_code == 400, response.content[:300]
    assert "NUL" in response.content.decode()


def test_the_same_searches_without_a_nul_still_answer(acme_client, acme_admin_client):
    assert acme_client.get("/api/v2/pages/?search=canyon").status_code == 200
    assert acme_client.get("/search/?q=canyon").status_code == 200
    assert acme_admin_client.get("/admin/pages/search/?q=canyon").status_code == 200


@pytest.mark.parametrize("field", ["title", "intro", "text", "slug"])
def test_a_nul_in_a_written_article_is_a_400_naming_the_field(
    acme_client, api_token, field
):
    body = {"title": "Plain", "text": "Plain", field: "a\x00b"}

    response = acme_client.post(
        "/api/v2/articles/",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_token('acme')}",
    )

    assert response.status_code == 400, response.content[:300]
    assert "Null characters are not allowed." in response.json()["fields"][field]


def test_a_nul_in_an_admin_form_is_a_form_error(acme_admin_client):
    response = acme_admin_client.post(
        "/admin/collections/add/", {"name": "a\x00b", "parent": ""}
    )

    assert response.status_code == 200  # the form again, with its error
    assert "Null characters are not allowed" in response.content.decode()
