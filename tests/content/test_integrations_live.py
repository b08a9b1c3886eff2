"""API tokens and webhooks with real processes: gunicorn serving token requests, a
Celery worker delivering webhooks to a receiver the test starts, retries after 500s
and disabling after repeated failures."""

import datetime
import http.client
import json

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context
from standardwebhooks.webhooks import Webhook
from wagtail.models import APIToken, Page

from content.integrations import webhooks
from content.integrations.models import ApiTokenGrant, WebhookDelivery, WebhookEndpoint
from content.integrations.tokens import token_revoke
from tenants.models import Tenant
from tests.conftest import ACME_HOST, GLOBEX_HOST
from tests.content.webhook_receiver import webhook_receiver
from tests.integration import free_port, start_gunicorn, stop_process, wait_for


@pytest.fixture
def committed(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        yield
        connection.set_schema_to_public()


def _request(port: int, host: str, method: str, path: str, token: str, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            method,
            path,
            body=json.dumps(body) if body is not None else None,
            headers={
                "Host": host,
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
            },
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def _grant(token: str) -> ApiTokenGrant:
    with schema_context("acme"):
        return ApiTokenGrant.objects.select_related("token").get(
            token__key_hash=APIToken.hash_token(token)
        )


def test_tokens_through_gunicorn(committed, api_token, tmp_path):
    reader = api_token(scopes=("read",))
    writer = api_token(scopes=("write",))
    expiring = api_token(scopes=("read",))
    port = free_port()
    server = start_gunicorn(port, tmp_path / "gunicorn.log", workers=1)
    try:
        wait_for(
            lambda: (
                _request(port, ACME_HOST, "GET", "/api/v2/pages/", reader)[0] == 200
            ),
            timeout=60,
            what="gunicorn to serve acme",
        )
        read_as_writer = _request(port, ACME_HOST, "GET", "/api/v2/pages/", writer)
        write_as_reader = _request(
            port, ACME_HOST, "POST", "/api/v2/articles/", reader, {"title": "No"}
        )
        foreign = _request(port, GLOBEX_HOST, "GET", "/api/v2/pages/", reader)
        draft = _request(
            port, ACME_HOST, "POST", "/api/v2/articles/", writer, {"title": "Live 1"}
        )

        with schema_context("acme"):
            token_revoke(grant=_grant(reader))
            ApiTokenGrant.objects.filter(pk=_grant(expiring).pk).update(
                expires_at=timezone.now() - datetime.timedelta(seconds=1)
            )
        revoked = _request(port, ACME_HOST, "GET", "/api/v2/pages/", reader)
        expired = _request(port, ACME_HOST, "GET", "/api/v2/pages/", expiring)

        assert read_as_writer[0] == 403
        assert write_as_reader == (
            403,
            {
                "error": "forbidden",
                "message": "This token lacks the 'write' scope (it has: read).",
            },
        )
        assert foreign == (
            401,
            {
                "error": "not_authenticated",
                "message": "The token is not valid for this site.",
            },
        )
        assert draft[0] == 201 and draft[1]["live"] is False
        assert revoked == (
            401,
            {"error": "not_authenticated", "message": "The token was revoked."},
        )
        assert expired[1]["message"] == "The token has expired."
        assert _grant(writer).last_used_address == "127.0.0.1"
    finally:
        stop_process(server)
        with schema_context("acme"):
            Page.objects.filter(title="Live 1").delete()
            APIToken.objects.filter(name__startswith="test token").delete()


def _endpoint(url: str) -> WebhookEndpoint:
    with schema_context("acme"):
        return webhooks.endpoint_create(
            tenant=Tenant.objects.get(schema_name="acme"),
            url=url,
            events=["page.published"],
        )


def _log(endpoint: WebhookEndpoint) -> list[WebhookDelivery]:
    with schema_context("acme"):
        return list(endpoint.deliveries.order_by("pk"))


def _cleanup(endpoint: WebhookEndpoint, *titles: str) -> None:
    with schema_context("acme"):
        WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()
        Page.objects.filter(title__in=titles).delete()
        APIToken.objects.filter(name__startswith="test token").delete()


def test_a_publish_reaches_a_real_receiver_after_two_500s(
    committed, celery_worker, api_token
):
    token = api_token(scopes=("write", "publish"))
    with webhook_receiver() as receiver:
        receiver.answers["/hook"] = [500, 500]
        endpoint = _endpoint(receiver.url())
        try:
            published = Client(HTTP_HOST=ACME_HOST).post(
                "/api/v2/articles/",
                {"title": "Hook me", "publish": True},
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {token}",
            )
            # queued (202): the real worker publishes it, then the webhook fires
            assert published.status_code == 202, published.content

            wait_for(
                lambda: len(receiver.received) >= 3,
                timeout=60,
                what=f"three attempts at the receiver (worker log: {celery_worker})",
            )
            wait_for(
                lambda: _log(endpoint)[-1].status == "succeeded",
                timeout=30,
                what="the third attempt to be logged",
            )
            log = _log(endpoint)
        finally:
            _cleanup(endpoint, "Hook me")

    assert [(d.attempt, d.status, d.response_status) for d in log] == [
        (1, "failed", 500),
        (2, "failed", 500),
        (3, "succeeded", 200),
    ]
    ids = {got.headers["webhook-id"] for got in receiver.received}
    assert ids == {log[0].message_id}  # one event, three attempts
    for got in receiver.received:
        payload = Webhook(endpoint.secret).verify(got.body, got.headers)
        assert payload["data"]["page"]["title"] == "Hook me"
        assert payload["data"]["actor"]["username"] == "admin"


def test_an_endpoint_failing_again_and_again_is_disabled(committed, celery_worker):
    with webhook_receiver() as receiver:
        receiver.answers["/hook"] = [500] * 50
        endpoint = _endpoint(receiver.url())
        try:
            with schema_context("acme"):
                page = Page.objects.filter(live=True).exclude(depth__lt=3).first()
                page.specific.save_revision().publish()

            def disabled() -> bool:
                with schema_context("acme"):
                    return not WebhookEndpoint.objects.get(pk=endpoint.pk).enabled

            wait_for(
                disabled,
                timeout=60,
                what=f"the endpoint to be disabled (worker log: {celery_worker})",
            )
            with schema_context("acme"):
                endpoint.refresh_from_db()
            log = _log(endpoint)
            client = Client(HTTP_HOST=ACME_HOST)
            client.post(
                "/admin/login/", {"username": "admin", "password": "acme-admin-demo"}
            )
            admin_page = client.get("/admin/content/webhooks/").content.decode()
        finally:
            _cleanup(endpoint)

    assert len(receiver.received) == 4  # CMS_WEBHOOKS_DISABLE_AFTER_FAILURES in tests
    assert [d.status for d in log] == ["failed"] * 4
    assert "after 4 failed deliveries in a row" in endpoint.disabled_reason
    assert "The endpoint answered 500." in endpoint.disabled_reason
    assert "after 4 failed deliveries in a row" in admin_page
