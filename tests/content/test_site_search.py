"""Visitors search a tenant's site and crawlers read its sitemap."""

import pytest

pytestmark = pytest.mark.django_db


def test_search_finds_live_articles(acme_client):
    response = acme_client.get("/search/", {"q": "canyon"})

    assert response.status_code == 200
    body = response.content.decode()
    assert "Acme launches the Mark IV" in body
    assert 'href="/acme-launches-the-mark-iv/"' in body
    assert response["RateLimit-Policy"].startswith('"public-reads-per-minute";')


def test_empty_and_unmatched_queries(acme_client):
    assert "Nothing found" not in acme_client.get("/search/").content.decode()
    missing = acme_client.get("/search/", {"q": "zzzqqq"})
    assert missing.status_code == 200
    assert "Nothing found for “zzzqqq”" in missing.content.decode()


@pytest.mark.parametrize("params", [{"q": "x" * 201}, {"q": "canyon", "page": "-4"}])
def test_bad_queries_get_a_clear_answer(acme_client, params):
    response = acme_client.get("/search/", params)

    if len(params["q"]) > 200:
        assert response.status_code == 400
        assert "too long" in response.content.decode()
    else:
        assert response.status_code == 200
        assert "Acme launches the Mark IV" in response.content.decode()


def test_sitemap_lists_every_live_page_with_full_urls(globex_client):
    response = globex_client.get("/sitemap.xml")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/xml")
    body = response.content.decode()
    assert "<loc>http://globex.localhost:8000/</loc>" in body
    assert "<loc>http://globex.localhost:8000/globex-opens-a-new-campus/</loc>" in body
    assert "acme" not in body
