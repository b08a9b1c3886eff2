"""Editors: users, sessions, CSRF, password resets and every chooser stay per tenant."""

import re

import pytest
from django.core import mail

from tests.isolation.conftest import TWIN_USER, assert_nothing_of, assert_only_own

pytestmark = pytest.mark.django_db

# Admin screens that list a tenant's content; each must show nothing of the other.
ADMIN_LISTINGS = [
    "/admin/",
    "/admin/pages/search/?q=Twin",
    "/admin/choose-page/",
    "/admin/choose-page/search/?q=Twin",
    "/admin/images/",
    "/admin/images/chooser/",
    "/admin/documents/",
    "/admin/documents/chooser/",
    "/admin/users/",
    "/admin/redirects/",
    "/admin/workflows/list/",
    "/admin/reports/site-history/",
    "/admin/reports/locked/",
    "/admin/reports/aging-pages/",
]


@pytest.fixture(params=[0, 1], ids=["at-acme", "at-globex"])
def pair(request, twins):
    return twins[request.param], twins[1 - request.param]


def test_same_username_logs_in_only_with_its_own_tenants_password(pair):
    own, other = pair

    wrong = own.client().post(
        "/admin/login/", {"username": TWIN_USER, "password": other.password}
    )

    assert wrong.status_code == 200  # the form again, with an error
    own.admin_client()


@pytest.mark.parametrize("path", ADMIN_LISTINGS)
def test_admin_listings_show_nothing_of_the_other_tenant(pair, path):
    own, other = pair
    client = own.admin_client()

    response = client.get(path)

    assert response.status_code == 200, path
    assert_nothing_of(response.content.decode(), other, where=path)


def test_edit_and_preview_show_own_draft(pair):
    own, other = pair
    client = own.admin_client()

    edit = client.get(f"/admin/pages/{own.draft_id}/edit/")
    preview = client.get(f"/admin/pages/{own.draft_id}/view_draft/")

    assert edit.status_code == 200
    assert_only_own(edit.content.decode(), own, other, where="page editor")
    assert preview.status_code == 200
    assert_only_own(preview.content.decode(), own, other, where="preview")


def test_session_and_csrf_of_one_tenant_give_nothing_at_the_other(pair):
    own, other = pair
    client = own.admin_client()
    csrf = client.cookies["cms_csrftoken"].value

    client.defaults["HTTP_HOST"] = other.host
    dashboard = client.get("/admin/")
    post = client.post(
        f"/admin/pages/{other.draft_id}/delete/",
        {"csrfmiddlewaretoken": csrf},
    )

    assert dashboard.status_code == 302
    assert "/admin/login/" in dashboard["Location"]
    assert post.status_code == 302 and "/admin/login/" in post["Location"]
    for name in ("cms_session", "cms_csrftoken"):
        assert not client.cookies[name]["domain"], f"{name} must be host-only"


def test_password_reset_link_works_only_at_its_own_tenant(pair):
    own, other = pair
    mail.outbox.clear()

    own.client().post("/admin/password_reset/", {"email": f"{TWIN_USER}@example.com"})

    assert len(mail.outbox) == 1
    message = mail.outbox[0].body
    link = re.search(r"https?://([^/\s]+)(/admin/password_reset/confirm/\S+)", message)
    assert link, message
    host, path = link.groups()
    assert host.split(":")[0] == own.host
    assert_nothing_of(message, other, where="reset email")
    at_own = own.client().get(path, follow=True)
    at_other = other.client().get(path, follow=True)
    assert "new_password1" in at_own.content.decode()
    assert "new_password1" not in at_other.content.decode()
