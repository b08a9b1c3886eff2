"""API tokens and webhooks with real processes: gunicorn serving token requests, a
Celery worker delivering webhooks to a receiver the test starts, retries after 500s
and disabling after repeated failures."""

import datetime
import http.client
import json
import threading
import time

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context
from standardwebhooks.webhooks import Webhook
from wagtail.models import APIToken, Page

from content.integrations import webhooks
from content.integrations.models import ApiTokenGrant, WebhookDelivery, WebhookEndpoint
from content.integrations.tokens import token_revoke
from content.jobs import BackgroundJob
from tenants.jobs import fair_queue
from tenants.models import Tenant
from tests.conftest import ACME_HOST, GLOBEX_HOST
from tests.content.webhook_receiver import webhook_receiver
from tests.integration import (
    free_port,
    other_connection,
    start_gunicorn,
    stop_process,
    wait_for,
)


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


def test_a_slow_endpoint_delays_neither_anothers_deliveries_nor_publishing(
    committed, celery_worker
):
    """Acme's endpoint answers after 6 s and acme has six deliveries queued, at most
    one in flight (its plan's webhook_concurrency); acme's new events, globex's
    delivery and a publishing job queued meanwhile do not wait for it: deliveries run
    in a lane of their own on the delivery worker's threads, never on the publishing
    worker, and an attempt in flight does not lock its endpoint against new events."""
    from content.jobs import enqueue_job
    from tenants.models import Plan

    acme = Tenant.objects.select_related("plan").get(schema_name="acme")
    features = acme.plan.features
    Plan.objects.filter(pk=acme.plan_id).update(
        features={**features, "webhook_concurrency": 1}
    )
    with webhook_receiver() as receiver:
        receiver.delays["/slow"] = 6
        with schema_context("acme"):
            slow = webhooks.endpoint_create(
                tenant=acme, url=receiver.url("/slow"), events=["webhook.test"]
            )
        with schema_context("globex"):
            fast = webhooks.endpoint_create(
                tenant=Tenant.objects.get(schema_name="globex"),
                url=receiver.url("/fast"),
                events=["webhook.test"],
            )
        try:
            with schema_context("acme"):
                webhooks.send_test_event(endpoint=slow, actor=None)
            wait_for(
                lambda: receiver.at("/slow"),
                timeout=30,
                what=f"acme's first delivery (worker log: {celery_worker})",
            )
            # new events for an endpoint with an attempt in flight are not held up
            started = time.monotonic()
            with schema_context("acme"):
                for _ in range(5):
                    webhooks.send_test_event(endpoint=slow, actor=None)
            emitted_after = time.monotonic() - started
            with schema_context("globex"):
                webhooks.send_test_event(endpoint=fast, actor=None)
                job = enqueue_job(kind="test.noop", args={})
            wait_for(lambda: receiver.at("/fast"), timeout=30, what="globex's delivery")
            delivered_after = time.monotonic() - started

            def job_done() -> bool:
                with schema_context("globex"):
                    return BackgroundJob.objects.get(pk=job.pk).status == "done"

            wait_for(job_done, timeout=30, what="globex's publishing job")
            done_after = time.monotonic() - started
            slow_arrivals = len(receiver.at("/slow"))
        finally:
            Plan.objects.filter(pk=acme.plan_id).update(features=features)
            fair_queue.clear(schema="acme", queue=settings.CMS_WEBHOOKS_QUEUE)
            for schema, endpoint in (("acme", slow), ("globex", fast)):
                with schema_context(schema):
                    webhooks.endpoint_delete(endpoint=endpoint)
                    BackgroundJob.objects.filter(
                        kind=webhooks.DELIVERY_JOB, status="queued"
                    ).delete()

    # acme's first delivery still waits for its answer: one in flight, five queued
    assert slow_arrivals == 1
    assert emitted_after < 3, emitted_after
    assert delivered_after < 4, delivered_after
    assert done_after < 4, done_after


def test_an_endpoint_deleted_while_a_delivery_logs_its_retry_is_deleted(committed):
    """The worker delivering to an endpoint holds its row (KEY SHARE) and logs the
    next attempt as a new row before it commits; deleting the endpoint meanwhile
    waits and takes that row too (it failed on a foreign key before)."""
    acme = Tenant.objects.select_related("plan").get(schema_name="acme")
    with schema_context("acme"):
        endpoint = webhooks.endpoint_create(
            tenant=acme, url="http://127.0.0.1:9/hook", events=["webhook.test"]
        )
        delivery = webhooks.send_test_event(endpoint=endpoint, actor=None)
    fair_queue.clear(schema="acme", queue=settings.CMS_WEBHOOKS_QUEUE)
    locked = threading.Event()

    def deliver_and_log_a_retry() -> None:
        with other_connection() as other:
            # what deliver() locks, in its order, then what a failure writes
            other.execute(
                "SELECT 1 FROM acme.content_webhookendpoint WHERE id = %s"
                " FOR KEY SHARE",
                [endpoint.pk],
            )
            other.execute(
                "SELECT 1 FROM acme.content_webhookdelivery WHERE id = %s FOR UPDATE",
                [delivery.pk],
            )
            locked.set()
            time.sleep(1)
            other.execute(
                "UPDATE acme.content_webhookendpoint"
                " SET consecutive_failures = consecutive_failures + 1 WHERE id = %s",
                [endpoint.pk],
            )
            columns = ", ".join(
                row[0]
                for row in other.execute(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = 'acme'"
                    " AND table_name = 'content_webhookdelivery'"
                    " AND column_name <> 'id'"
                )
            )
            other.execute(
                f"INSERT INTO acme.content_webhookdelivery ({columns})"
                f" SELECT {columns} FROM acme.content_webhookdelivery WHERE id = %s",
                [delivery.pk],
            )
            other.commit()

    worker = threading.Thread(target=deliver_and_log_a_retry)
    worker.start()
    try:
        assert locked.wait(10)
        with schema_context("acme"):
            webhooks.endpoint_delete(endpoint=endpoint)
        with schema_context("acme"):
            endpoint_left = WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
            deliveries_left = WebhookDelivery.objects.filter(
                endpoint_id=endpoint.pk
            ).count()
    finally:
        worker.join(10)
        with schema_context("acme"):
            BackgroundJob.objects.filter(kind=webhooks.DELIVERY_JOB).delete()
            # what a failed run leaves would fail the next tests
            WebhookDelivery.objects.filter(endpoint_id=endpoint.pk).delete()
            WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()

    assert (endpoint_left, deliveries_left) == (False, 0)
