"""Visitors get each tenant's own site by its domain."""

import pytest

pytestmark = pytest.mark.django_db


def test_each_demo_home_page_lists_only_its_own_articles(acme_client, globex_client):
    acme = acme_client.get("/")
    globex = globex_client.get("/")

    assert acme.status_code == 200
    assert globex.status_code == 200
    acme_html = acme.content.decode()
    globex_html = globex.content.decode()
    assert "Acme launches the Mark IV" in acme_html
    assert "Globex opens a new campus" not in acme_html
    assert "Globex opens a new campus" in globex_html
    assert "Acme launches the Mark IV" not in globex_html


def test_article_is_served_at_its_tenant_only(acme_client, globex_client):
    path = "/acme-launches-the-mark-iv/"

    article = acme_client.get(path)

    assert article.status_code == 200
    html = article.content.decode()
    assert "<h1>Acme launches the Mark IV</h1>" in html
    assert "A rocket for every road runner." in html
    assert "Acme Rockets says hello." in html  # quote block rendered
    assert globex_client.get(path).status_code == 404


def test_unknown_host_gets_the_not_found_page(client):
    response = client.get("/", HTTP_HOST="nobody.example.com")

    assert response.status_code == 404
    assert "No site is hosted at" in response.content.decode()
    assert "nobody.example.com" in response.content.decode()


def test_public_host_serves_the_platform_page_not_a_tenant(client):
    response = client.get("/", HTTP_HOST="localhost")

    assert response.status_code == 200
    assert "Tenant CMS" in response.content.decode()
