"""Page privacy end to end on a tenant's host: a password-protected page unlocks with
its password, a page for signed-in users or a group lets them in through the site's
login, and nobody else sees it - not from the cache, not in the home page's listing."""

import pytest
from django.test import Client
from wagtail.models import PageViewRestriction

from tests.isolation.privacy import (
    MEMBER,
    OUTSIDER,
    PASSWORD,
    VISITOR_PASSWORD,
    passing_client,
    restrict,
    visitors,
)
from tests.rate_windows import clear_of_window_edges

TWIN_PATH = "/twin/"


@pytest.fixture
def acme(twins):
    acme, _ = twins
    visitors(acme.schema)
    return acme


def test_password_protected_page_unlocks_with_its_password(acme):
    restriction_id = restrict(acme.schema, acme.article_id, "password")
    client = acme.client()

    form = client.get(TWIN_PATH)
    action = f"/_util/authenticate_with_password/{restriction_id}/{acme.article_id}/"
    wrong = client.post(action, {"password": "nope", "return_url": TWIN_PATH})
    right = client.post(action, {"password": PASSWORD, "return_url": TWIN_PATH})
    unlocked = client.get(TWIN_PATH)

    assert form.status_code == 200
    assert action in form.content.decode()
    assert acme.secret not in form.content.decode()
    assert wrong.status_code == 200  # the form again
    assert acme.secret not in wrong.content.decode()
    assert right.status_code == 302
    assert right["Location"] == TWIN_PATH
    assert acme.secret in unlocked.content.decode()
    # the one who unlocked it does not unlock it for the next visitor
    assert acme.secret not in acme.client().get(TWIN_PATH).content.decode()


@pytest.mark.parametrize("kind", ["login", "groups"])
def test_login_restricted_page_lets_in_through_the_site_login(acme, kind):
    restrict(acme.schema, acme.article_id, kind)
    client = acme.client()

    refused = client.get(TWIN_PATH)
    login_page = client.get(refused["Location"])
    login = client.post(
        refused["Location"], {"username": MEMBER, "password": VISITOR_PASSWORD}
    )
    page = client.get(TWIN_PATH)

    assert refused.status_code == 302
    assert refused["Location"].startswith("/_util/login/?next=")
    assert login_page.status_code == 200
    assert login.status_code == 302
    assert login["Location"] == TWIN_PATH
    assert page.status_code == 200
    assert acme.secret in page.content.decode()


def test_group_restricted_page_refuses_a_signed_in_outsider(acme):
    restrict(acme.schema, acme.article_id, "groups")
    client = acme.client()
    assert (
        client.post(
            "/_util/login/", {"username": OUTSIDER, "password": VISITOR_PASSWORD}
        ).status_code
        == 302
    )
    response = client.get(TWIN_PATH)
    assert acme.secret not in response.content.decode()
    assert response.status_code in (302, 403)


@pytest.mark.parametrize("kind", ["password", "login", "groups"])
def test_a_cached_page_is_not_served_once_restricted(acme, kind):
    visitor = acme.client()
    assert visitor.get(TWIN_PATH)["X-Page-Cache"] == "miss"
    assert visitor.get(TWIN_PATH)["X-Page-Cache"] == "hit"

    restrict(acme.schema, acme.article_id, kind)
    after = visitor.get(TWIN_PATH)

    assert acme.secret not in after.content.decode()
    assert after.get("X-Page-Cache") != "hit"


@pytest.mark.parametrize("kind", ["password", "login", "groups"])
def test_home_page_listing_leaves_out_restricted_articles(acme, kind):
    visitor = acme.client()
    assert acme.secret in visitor.get("/").content.decode()  # listed while public

    restrict(acme.schema, acme.article_id, kind)

    assert acme.secret not in visitor.get("/").content.decode()
    # nor for a visitor who may see the page itself: the listing is shared
    insider = passing_client(acme.host, kind, _restriction_id(acme), acme.article_id)
    assert acme.secret in insider.get(TWIN_PATH).content.decode()


def _restriction_id(twin) -> int:
    from django_tenants.utils import schema_context

    with schema_context(twin.schema):
        return PageViewRestriction.objects.get(page_id=twin.article_id).pk


@pytest.mark.parametrize("on", ["page", "ancestor"])
def test_policy_never_stores_a_page_under_a_restriction(acme, on):
    """The policy asks the served page and its ancestors, whatever the response
    looked like (a 200 without cookies and without a CSRF token here)."""
    from django.db import connection
    from django.http import HttpResponse
    from django.test import RequestFactory
    from django_tenants.utils import schema_context
    from wagtail.models import Page

    from content.page_cache import is_cacheable_response, note_served_page

    def cacheable() -> bool:
        with schema_context(acme.schema):
            request = RequestFactory().get(TWIN_PATH)
            note_served_page(request, Page.objects.get(pk=acme.article_id))
            return is_cacheable_response(request, HttpResponse("shareable"))

    assert cacheable()
    with schema_context(acme.schema):
        target = Page.objects.get(pk=acme.article_id)
        if on == "ancestor":
            target = target.get_parent()
        target_id = target.pk
    connection.set_schema_to_public()
    restrict(acme.schema, target_id, "login")
    assert not cacheable()


def test_a_page_password_is_limited_per_restriction_across_clients(acme, settings):
    settings.CMS_LOGIN_RATE_PER_ACCOUNT = "3/m"
    restriction_id = restrict(acme.schema, acme.article_id, "password")
    action = f"/_util/authenticate_with_password/{restriction_id}/{acme.article_id}/"
    clear_of_window_edges(f"page_view_restriction_id={restriction_id}", margin=5)

    statuses = [
        Client(HTTP_HOST=acme.host, REMOTE_ADDR=f"203.0.113.{n}")
        .post(action, {"password": "guess", "return_url": "/twin/"})
        .status_code
        for n in range(4)
    ]

    assert statuses == [200, 200, 200, 429]
