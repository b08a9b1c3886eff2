"""Editors log in to the Wagtail admin at their own tenant's domain, and only there."""

import pytest
from django.conf import settings
from django.test import Client

from tests.conftest import ACME_HOST, GLOBEX_HOST

pytestmark = pytest.mark.django_db

ACME_EDITOR = {"username": "editor", "password": "acme-editor-demo"}
GLOBEX_EDITOR = {"username": "editor", "password": "globex-editor-demo"}


def _login(client: Client, credentials: dict) -> bool:
    response = client.post("/admin/login/", credentials)
    return response.status_code == 302 and client.get("/admin/").status_code == 200


@pytest.mark.parametrize(
    ("host", "credentials"),
    [(ACME_HOST, ACME_EDITOR), (GLOBEX_HOST, GLOBEX_EDITOR)],
)
def test_editor_logs_in_at_own_tenant(host, credentials):
    client = Client(HTTP_HOST=host)

    assert _login(client, credentials)
    dashboard = client.get("/admin/")
    assert dashboard.status_code == 200
    assert "Dashboard" in dashboard.content.decode()


def test_editor_credentials_do_not_work_at_the_other_tenant():
    client = Client(HTTP_HOST=GLOBEX_HOST)

    response = client.post("/admin/login/", ACME_EDITOR)

    # Same username exists at globex, but with globex's password: acme's fails.
    assert response.status_code == 200
    assert "Your username and password didn" in response.content.decode()
    assert client.get("/admin/").status_code == 302  # still sent to login


def test_session_cookie_of_one_tenant_gives_nothing_at_the_other():
    acme = Client(HTTP_HOST=ACME_HOST)
    assert _login(acme, ACME_EDITOR)
    cookie = acme.cookies[settings.SESSION_COOKIE_NAME].value

    intruder = Client(HTTP_HOST=GLOBEX_HOST)
    intruder.cookies[settings.SESSION_COOKIE_NAME] = cookie
    response = intruder.get("/admin/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_session_cookie_is_host_only():
    acme = Client(HTTP_HOST=ACME_HOST)
    assert _login(acme, ACME_EDITOR)

    morsel = acme.cookies[settings.SESSION_COOKIE_NAME]

    assert morsel["domain"] == ""  # never shared with sibling subdomains
    assert morsel["httponly"]


def test_admin_of_unknown_host_is_not_found(client):
    response = client.post("/admin/login/", ACME_EDITOR, HTTP_HOST="evil.localhost")

    assert response.status_code == 404
