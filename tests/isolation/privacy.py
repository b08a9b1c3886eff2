"""Helpers of the privacy tests: view restrictions set the way the admin's privacy
dialog sets them (the model, its groups, the signals), and a visitor who passes one."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context
from wagtail.models import Page, PageViewRestriction

PASSWORD = "let-me-in-42"
MEMBER = "member"
OUTSIDER = "outsider"
VISITOR_PASSWORD = "visitor-pass-9"
GROUP = "Subscribers"

KINDS = (
    PageViewRestriction.PASSWORD,
    PageViewRestriction.LOGIN,
    PageViewRestriction.GROUPS,
)


def visitors(schema: str) -> None:
    """A member of the group and a signed-in user outside it, in ``schema``."""
    with schema_context(schema):
        group, _ = Group.objects.get_or_create(name=GROUP)
        users = get_user_model().objects
        if not users.filter(username=MEMBER).exists():
            member = users.create_user(MEMBER, password=VISITOR_PASSWORD)
            member.groups.add(group)
            users.create_user(OUTSIDER, password=VISITOR_PASSWORD)
    connection.set_schema_to_public()


def restrict(schema: str, page_id: int, kind: str) -> int:
    """Put a view restriction of ``kind`` on the page; its id."""
    with schema_context(schema):
        restriction = PageViewRestriction.objects.create(
            page=Page.objects.get(pk=page_id),
            restriction_type=kind,
            password=PASSWORD if kind == PageViewRestriction.PASSWORD else "",
        )
        if kind == PageViewRestriction.GROUPS:
            restriction.groups.set([Group.objects.get(name=GROUP)])
        restriction_id = restriction.pk
    connection.set_schema_to_public()
    return restriction_id


def change(schema: str, restriction_id: int, kind: str) -> None:
    """Turn an existing restriction into one of ``kind``."""
    with schema_context(schema):
        restriction = PageViewRestriction.objects.get(pk=restriction_id)
        restriction.restriction_type = kind
        restriction.password = PASSWORD if kind == PageViewRestriction.PASSWORD else ""
        restriction.save()
        if kind == PageViewRestriction.GROUPS:
            restriction.groups.set([Group.objects.get(name=GROUP)])
        else:
            restriction.groups.clear()
    connection.set_schema_to_public()


def unrestrict(schema: str, restriction_id: int) -> None:
    with schema_context(schema):
        PageViewRestriction.objects.filter(pk=restriction_id).delete()
    connection.set_schema_to_public()


def passing_client(host: str, kind: str, restriction_id: int, page_id: int) -> Client:
    """A visitor who passes a restriction of ``kind`` through the site's own forms:
    the password form, or the front-end login as a member of the group."""
    client = Client(HTTP_HOST=host)
    if kind == PageViewRestriction.PASSWORD:
        response = client.post(
            f"/_util/authenticate_with_password/{restriction_id}/{page_id}/",
            {"password": PASSWORD, "return_url": "/"},
        )
    else:
        response = client.post(
            "/_util/login/", {"username": MEMBER, "password": VISITOR_PASSWORD}
        )
    assert response.status_code == 302, f"could not pass the {kind} restriction"
    return client
