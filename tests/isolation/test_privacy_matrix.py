"""Generated matrix of privacy: restriction kind (password, login, groups) x where it
sits (the page or an ancestor) x what happens while pages are cached (added, changed
to another kind, removed) x every surface that could show the page (the page read
cold and warm, the same through the WSGI edge that answers cached pages before
Django, the home listing, search, the sitemap, the API's listing and detail),
through HTTP with the tenant's Host header. And the same for documents: a
collection's restriction x (Wagtail's document view, the media route, the API).

Images and their renditions carry no restriction in Wagtail (collection privacy
applies to documents only), so they are no surface of this matrix.

Examples are rolled back, Redis is not: each example starts with the tenant's page
cache purged and the rate counters cleared, so no example sees another's state.
"""

import pytest
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.test import Client
from django_tenants.utils import schema_context
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from wagtail.documents.models import Document
from wagtail.models import Collection, CollectionViewRestriction, Page

from tenants.redis_store.keys import state_redis, tenant_key_pattern
from tenants.request_path.page_cache import purge_tenant_pages
from tests.isolation.privacy import (
    GROUP,
    KINDS,
    MEMBER,
    PASSWORD,
    VISITOR_PASSWORD,
    change,
    restrict,
    unrestrict,
    visitors,
)
from tests.wsgi_app import transaction_kept, wsgi

pytestmark = pytest.mark.django_db

TWIN_PATH = "/twin/"
# Few examples per run locally (each is some twenty requests); the CI profile may
# raise it (tests/conftest.py).
MATRIX_EXAMPLES = 6

kinds = st.sampled_from(KINDS)
places = st.sampled_from(("page", "ancestor"))
changes = st.sampled_from(("added", "changed", "removed"))


def _through_the_edge(host: str, path: str) -> str:
    """GET ``path`` through the WSGI application gunicorn serves
    (tenants.request_path.edge), in the example's transaction."""
    with transaction_kept():
        return wsgi(path, host=host).body.decode(errors="replace")


def _fresh_example(schema: str) -> None:
    with schema_context(schema):
        purge_tenant_pages()
    connection.set_schema_to_public()
    client = state_redis()
    for pattern in ("*:test:*", tenant_key_pattern("*")):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)


def _page_surfaces(client: Client, twin) -> dict[str, bool]:
    """Whether each surface shows the twin article to ``client``."""
    cold = client.get(TWIN_PATH)
    warm = client.get(TWIN_PATH)
    edge_cold = _through_the_edge(twin.host, TWIN_PATH)
    edge_warm = _through_the_edge(twin.host, TWIN_PATH)
    listing = client.get("/")
    search = client.get("/search/", {"q": twin.secret})
    sitemap = client.get("/sitemap.xml")
    api_list = client.get(
        "/api/v2/pages/",
        {"type": "content.ArticlePage", "fields": "intro", "slug": "twin"},
    )
    api_detail = client.get(f"/api/v2/pages/{twin.article_id}/")
    return {
        "page cold": twin.secret in cold.content.decode(),
        "page warm": twin.secret in warm.content.decode(),
        "edge cold": twin.secret in edge_cold,
        "edge warm": twin.secret in edge_warm,
        "listing": twin.secret in listing.content.decode(),
        "search": f'href="{TWIN_PATH}"' in search.content.decode(),
        "sitemap": TWIN_PATH in sitemap.content.decode(),
        "api listing": twin.secret in api_list.content.decode(),
        "api detail": api_detail.status_code == 200
        and twin.secret in api_detail.content.decode(),
    }


def _other_kind(kind: str) -> str:
    return KINDS[(KINDS.index(kind) + 1) % len(KINDS)]


def _insider(host: str, kind: str, restriction_id: int, page_id: int) -> Client:
    client = Client(HTTP_HOST=host)
    if kind == "password":
        response = client.post(
            f"/_util/authenticate_with_password/{restriction_id}/{page_id}/",
            {"password": PASSWORD, "return_url": "/"},
        )
    else:
        response = client.post(
            "/_util/login/", {"username": MEMBER, "password": VISITOR_PASSWORD}
        )
    assert response.status_code == 302
    return client


@hypothesis_settings(max_examples=MATRIX_EXAMPLES)
@given(kind=kinds, place=places, happening=changes)
def test_page_privacy_matrix(twins, kind, place, happening):
    acme, _ = twins
    visitors(acme.schema)
    with schema_context(acme.schema):
        target = Page.objects.get(pk=acme.article_id)
        if place == "ancestor":
            target = target.get_parent()
        target_id = target.pk
    connection.set_schema_to_public()
    _fresh_example(acme.schema)
    try:
        with transaction.atomic():
            anonymous = acme.client()
            if happening == "added":
                before = _page_surfaces(anonymous, acme)  # cached while public
                assert all(before.values()), before
                restriction_id = restrict(acme.schema, target_id, kind)
                final_kind = kind
            elif happening == "changed":
                restriction_id = restrict(acme.schema, target_id, _other_kind(kind))
                _page_surfaces(anonymous, acme)  # cached while restricted
                change(acme.schema, restriction_id, kind)
                final_kind = kind
            else:
                restriction_id = restrict(acme.schema, target_id, kind)
                before = _page_surfaces(anonymous, acme)  # cached while restricted
                assert not any(before.values()), before
                unrestrict(acme.schema, restriction_id)
                final_kind = None

            after = _page_surfaces(acme.client(), acme)
            again = _page_surfaces(anonymous, acme)

            if final_kind is None:
                assert all(after.values()), f"{place} {kind} removed: {after}"
                assert all(again.values()), f"{place} {kind} removed: {again}"
            else:
                assert not any(after.values()), f"{place} {kind} {happening}: {after}"
                assert not any(again.values()), f"{place} {kind} {happening}: {again}"
                insider = _insider(acme.host, final_kind, restriction_id, target_id)
                seen = insider.get(TWIN_PATH).content.decode()
                assert acme.secret in seen, f"{place} {kind} {happening}: insider"
            transaction.set_rollback(True)
    finally:
        connection.set_schema_to_public()


def _restrict_collection(schema: str, collection_id: int, kind: str) -> int:
    from django.contrib.auth.models import Group

    with schema_context(schema):
        restriction = CollectionViewRestriction.objects.create(
            collection_id=collection_id,
            restriction_type=kind,
            password=PASSWORD if kind == "password" else "",
        )
        if kind == "groups":
            restriction.groups.set([Group.objects.get(name=GROUP)])
        restriction_id = restriction.pk
    connection.set_schema_to_public()
    return restriction_id


def _document_surfaces(client: Client, document: dict, secret: str) -> dict:
    view = client.get(document["url"])
    media = client.get(document["media_url"])
    api_list = client.get("/api/v2/documents/")
    api_detail = client.get(f"/api/v2/documents/{document['id']}/")

    def body(response) -> str:
        if response.status_code != 200:
            return ""
        if response.streaming:
            return b"".join(response.streaming_content).decode(errors="replace")
        return response.content.decode()

    return {
        "document view": body(view) == secret,
        "media route": body(media) == secret,
        "api listing": document["title"] in body(api_list),
        "api detail": api_detail.status_code == 200,
    }


@hypothesis_settings(max_examples=MATRIX_EXAMPLES)
@given(kind=kinds, place=places, happening=changes)
def test_document_privacy_matrix(twins, kind, place, happening):
    acme, _ = twins
    visitors(acme.schema)
    _fresh_example(acme.schema)
    paths = []
    try:
        with transaction.atomic():
            with schema_context(acme.schema):
                parent = Collection.get_first_root_node().add_child(name="Section")
                collection = parent.add_child(name="Board")
                document = Document.objects.create(
                    title=f"Minutes {acme.secret}",
                    file=ContentFile(acme.secret.encode(), name="minutes.txt"),
                    collection=collection,
                )
                paths.append(document.file.path)
                found = {
                    "id": document.pk,
                    "url": document.url,
                    "media_url": document.file.url,
                    "title": document.title,
                }
                target = collection.pk if place == "page" else parent.pk
            connection.set_schema_to_public()
            anonymous = acme.client()
            if happening == "added":
                assert all(_document_surfaces(anonymous, found, acme.secret).values())
                restriction_id = _restrict_collection(acme.schema, target, kind)
                final_kind = kind
            elif happening == "changed":
                restriction_id = _restrict_collection(
                    acme.schema, target, _other_kind(kind)
                )
                with schema_context(acme.schema):
                    restriction = CollectionViewRestriction.objects.get(
                        pk=restriction_id
                    )
                    restriction.restriction_type = kind
                    restriction.password = PASSWORD if kind == "password" else ""
                    restriction.save()
                    if kind == "groups":
                        from django.contrib.auth.models import Group

                        restriction.groups.set([Group.objects.get(name=GROUP)])
                connection.set_schema_to_public()
                final_kind = kind
            else:
                restriction_id = _restrict_collection(acme.schema, target, kind)
                hidden = _document_surfaces(anonymous, found, acme.secret)
                assert not any(hidden.values()), hidden
                with schema_context(acme.schema):
                    CollectionViewRestriction.objects.filter(pk=restriction_id).delete()
                connection.set_schema_to_public()
                final_kind = None

            after = _document_surfaces(acme.client(), found, acme.secret)
            where = f"{place} {kind} {happening}"
            if final_kind is None:
                assert all(after.values()), f"{where}: {after}"
            else:
                assert not any(after.values()), f"{where}: {after}"
                insider = Client(HTTP_HOST=acme.host)
                if final_kind == "password":
                    unlocked = insider.post(
                        f"/documents/authenticate_with_password/{restriction_id}/",
                        {"password": PASSWORD, "return_url": found["url"]},
                    )
                else:
                    unlocked = insider.post(
                        "/_util/login/",
                        {"username": MEMBER, "password": VISITOR_PASSWORD},
                    )
                assert unlocked.status_code == 302
                view = insider.get(found["url"])
                assert view.status_code == 200, where
                assert b"".join(view.streaming_content).decode() == acme.secret
                # the media route never serves it, not even to an insider
                assert insider.get(found["media_url"]).status_code == 404
            transaction.set_rollback(True)
    finally:
        connection.set_schema_to_public()
        for path in paths:
            import os

            if os.path.exists(path):
                os.unlink(path)
