"""API tokens: made by a tenant's admins, shown once, stored hashed, scoped, refused
on other tenants' hosts, expiry and revocation at once, counted like any API call."""

import datetime
import json
import re

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context
from wagtail.models import APIToken

from content.integrations.models import ApiTokenGrant
from tests.conftest import ACME_HOST

pytestmark = pytest.mark.django_db

ARTICLE = {"title": "Token article", "text": "Body."}


def _admin_client() -> Client:
    client = Client(HTTP_HOST=ACME_HOST)
    response = client.post(
        "/admin/login/", {"username": "admin", "password": "acme-admin-demo"}
    )
    assert response.status_code == 302
    return client


def _bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def _write(client: Client, token: str, **extra) -> tuple[int, dict]:
    response = client.post(
        "/api/v2/articles/",
        {**ARTICLE, **extra},
        content_type="application/json",
        **_bearer(token),
    )
    return response.status_code, json.loads(response.content)


def test_admin_creates_a_token_shown_once_and_stored_as_a_hash():
    admin = _admin_client()

    created = admin.post(
        "/admin/content/api-tokens/",
        {"name": "Build pipeline", "scopes": ["read", "write"]},
    )

    assert created.status_code == 200
    secret = re.search(r'id="token-secret">([^<]+)<', created.content.decode())[1]
    listing = admin.get("/admin/content/api-tokens/").content.decode()
    assert "Build pipeline" in listing
    assert secret not in listing  # shown once
    with schema_context("acme"):
        token = APIToken.objects.get(name="Build pipeline")
        assert token.key_hash == APIToken.hash_token(secret)
        stored = json.dumps(
            list(APIToken.objects.values()) + list(ApiTokenGrant.objects.values()),
            default=str,
        )
        assert secret not in stored
        assert token.grant.scopes == ["read", "write"]
    status, body = _write(Client(HTTP_HOST=ACME_HOST), secret)
    assert status == 201, body


def test_the_settings_menu_and_pages_are_for_admins_only(acme_client):
    editor = Client(HTTP_HOST=ACME_HOST)
    editor.post("/admin/login/", {"username": "editor", "password": "acme-editor-demo"})

    for path in ("/admin/content/api-tokens/", "/admin/content/webhooks/"):
        refused = editor.get(path)
        # Wagtail's admin turns PermissionDenied into a redirect with a message
        assert (refused.status_code, refused["Location"]) == (302, "/admin/"), path
    assert "API tokens" not in editor.get("/admin/").content.decode()
    assert "API tokens" in _admin_client().get("/admin/").content.decode()


def test_scopes_are_enforced(acme_client, api_token):
    reader = api_token(scopes=("read",))
    writer = api_token(scopes=("write",))
    publisher = api_token(scopes=("write", "publish"))

    assert acme_client.get("/api/v2/pages/", **_bearer(reader)).status_code == 200
    no_read = acme_client.get("/api/v2/pages/", **_bearer(writer))
    status, body = _write(acme_client, reader)
    draft_status, draft = _write(acme_client, writer, slug="draft-by-token")
    publish_status, publish = _write(acme_client, writer, publish=True, slug="p1")
    live_status, live = _write(acme_client, publisher, publish=True, slug="p2")

    assert no_read.status_code == 403
    assert "lacks the 'read' scope" in json.loads(no_read.content)["message"]
    assert (status, body["error"]) == (403, "forbidden")
    assert "lacks the 'write' scope" in body["message"]
    assert draft_status == 201 and draft["live"] is False
    assert (publish_status, publish["error"]) == (403, "forbidden")
    assert "'publish' scope" in publish["message"]
    # publishing is a background job (202 with the job's URL); the scope lets it in
    assert live_status == 202 and live["job"]["status"] == "queued"


def test_a_token_of_one_tenant_is_refused_on_another_tenants_host(
    globex_client, api_token
):
    acme_token = api_token("acme")

    read = globex_client.get("/api/v2/pages/", **_bearer(acme_token))
    status, body = _write(globex_client, acme_token)

    assert read.status_code == 401
    assert status == 401
    assert body["message"] == "The token is not valid for this site."


def test_revocation_and_expiry_apply_to_the_next_request(acme_client, api_token):
    revoked, expiring = api_token(), api_token()
    assert _write(acme_client, revoked, slug="a1")[0] == 201
    assert _write(acme_client, expiring, slug="a2")[0] == 201
    with schema_context("acme"):
        grant = ApiTokenGrant.objects.get(token__key_hash=APIToken.hash_token(revoked))
        other = ApiTokenGrant.objects.get(token__key_hash=APIToken.hash_token(expiring))
    admin = _admin_client()

    admin.post(f"/admin/content/api-tokens/{grant.pk}/revoke/")
    with schema_context("acme"):
        ApiTokenGrant.objects.filter(pk=other.pk).update(
            expires_at=timezone.now() - datetime.timedelta(seconds=1)
        )

    assert _write(acme_client, revoked, slug="a3") == (
        401,
        {"error": "not_authenticated", "message": "The token was revoked."},
    )
    assert _write(acme_client, expiring, slug="a4")[1]["message"] == (
        "The token has expired."
    )
    assert "revoked" in admin.get("/admin/content/api-tokens/").content.decode()


def test_an_expiry_in_the_past_is_refused():
    admin = _admin_client()

    response = admin.post(
        "/admin/content/api-tokens/",
        {"name": "Old", "scopes": ["read"], "expires_at": "2001-01-01 00:00"},
    )

    assert "The expiry must be in the future." in response.content.decode()
    with schema_context("acme"):
        assert not APIToken.objects.filter(name="Old").exists()


def test_last_use_is_shown_with_time_address_and_count(acme_client, api_token):
    token = api_token(scopes=("read",))
    for _ in range(3):
        acme_client.get("/api/v2/pages/", REMOTE_ADDR="203.0.113.7", **_bearer(token))

    with schema_context("acme"):
        grant = ApiTokenGrant.objects.get(token__key_hash=APIToken.hash_token(token))
    assert grant.use_count == 3
    assert grant.last_used_address == "203.0.113.7"
    listing = _admin_client().get("/admin/content/api-tokens/").content.decode()
    assert "from 203.0.113.7" in listing


def test_the_plan_limits_how_many_tokens(api_token):
    call_command("plans", "update", "pro", "--feature", "api_tokens=1")
    api_token()
    admin = _admin_client()

    response = admin.post(
        "/admin/content/api-tokens/", {"name": "Second", "scopes": ["read"]}
    )

    assert "allows 1 API tokens a tenant may hold" in response.content.decode()
    with schema_context("acme"):
        assert not APIToken.objects.filter(name="Second").exists()


def test_token_calls_count_against_the_tenants_api_limits(acme_client, api_token):
    call_command("plans", "update", "pro", "--limit", "api_reads_per_minute=2")
    token = api_token(scopes=("read",))

    statuses = [
        acme_client.get("/api/v2/pages/", **_bearer(token)).status_code
        for _ in range(3)
    ]

    assert statuses == [200, 200, 429]


def test_garbage_and_unknown_schemes_get_a_readable_401(acme_client):
    for header in ("Bearer nonsense", "Bearer ", "Token abc", "Digest x"):
        response = acme_client.get("/api/v2/pages/", HTTP_AUTHORIZATION=header)
        assert response.status_code == 401, header
        assert json.loads(response.content)["error"] == "not_authenticated"
