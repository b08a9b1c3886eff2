"""Webhooks in one process: events emitted where pages and documents change, signed
deliveries to a real receiver, the delivery log, plan limits, the admin, and the
SSRF rules (loopback, 10/8, 169.254/16, a name resolving to loopback, a redirect)."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django_tenants.utils import schema_context
from standardwebhooks.webhooks import Webhook
from wagtail.documents import get_document_model
from wagtail.models import Page, Site

from content.integrations import webhooks
from content.integrations.models import WebhookDelivery, WebhookEndpoint
from content.models import ArticlePage
from tenants.models import Tenant
from tests.conftest import ACME_HOST
from tests.content.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_hourly_counter():
    with schema_context("acme"):
        caches["default"].delete(webhooks.hourly_counter_key())
    yield


def _endpoint(url: str, events=webhooks.EVENTS) -> WebhookEndpoint:
    with schema_context("acme"):
        return webhooks.endpoint_create(
            tenant=Tenant.objects.get(schema_name="acme"), url=url, events=events
        )


def _deliver_all() -> list[WebhookDelivery]:
    """Run every queued delivery as the worker would (in-process)."""
    with schema_context("acme"):
        queued = WebhookDelivery.objects.filter(status="queued").order_by("pk")
        for delivery in list(queued):
            with transaction.atomic():
                webhooks.deliver(delivery_id=delivery.pk)
        return list(WebhookDelivery.objects.order_by("pk"))


def _article(title: str = "Hooked") -> ArticlePage:
    with schema_context("acme"):
        home = Site.objects.get(is_default_site=True).root_page
        article = ArticlePage(title=title, intro="x", live=False)
        home.add_child(instance=article)
        return article


def test_a_publish_is_delivered_signed_with_the_page_and_actor():
    with webhook_receiver() as receiver:
        endpoint = _endpoint(receiver.url())
        article = _article()
        with schema_context("acme"):
            admin = get_user_model().objects.get(username="admin")
            article.save_revision(user=admin).publish(user=admin)

        deliveries = _deliver_all()

    assert [d.status for d in deliveries] == ["succeeded"]
    (got,) = receiver.received
    payload = Webhook(endpoint.secret).verify(got.body, got.headers)
    assert payload["type"] == "page.published"
    assert payload["data"]["page"] == {
        "id": article.pk,
        "type": "content.ArticlePage",
        "title": "Hooked",
        "url": "http://acme.localhost:8000/hooked/",
        "url_path": "/home/hooked/",
        "locale": "en",
    }
    assert payload["data"]["actor"]["username"] == "admin"
    assert got.headers["webhook-id"] == deliveries[0].message_id
    assert deliveries[0].response_status == 200
    assert deliveries[0].latency_ms is not None
    assert deliveries[0].response_excerpt == "answered 200"
    with pytest.raises(Exception, match="signature"):
        Webhook(webhooks.new_secret()).verify(got.body, got.headers)


def test_every_change_emits_its_event_to_subscribed_endpoints_only():
    everything = _endpoint("https://hooks.example.com/all")
    published_only = _endpoint("https://hooks.example.com/p", ["page.published"])
    article = _article("Mover")
    with schema_context("acme"):
        article.save_revision().publish()
        article.refresh_from_db()
        article.unpublish()
        home = Site.objects.get(is_default_site=True).root_page
        other = ArticlePage(title="Other parent", live=True)
        home.add_child(instance=other)
        # move under the site root's parent: a different parent page
        article.move(home.get_parent(), pos="last-child")
        get_document_model().objects.create(
            title="Price list", file=ContentFile(b"pdf", name="prices.pdf")
        )
        Page.objects.get(pk=article.pk).delete()

        events = list(
            WebhookDelivery.objects.filter(endpoint=everything).values_list(
                "event", flat=True
            )
        )
        only = list(
            WebhookDelivery.objects.filter(endpoint=published_only).values_list(
                "event", flat=True
            )
        )
        moved = WebhookDelivery.objects.get(endpoint=everything, event="page.moved")
        document = WebhookDelivery.objects.get(
            endpoint=everything, event="document.created"
        )

    assert sorted(events) == sorted(
        [
            "page.published",
            "page.unpublished",
            "page.moved",
            "document.created",
            "page.deleted",
        ]
    )
    assert only == ["page.published"]
    assert moved.payload["data"]["to"]["parent_id"] == home.get_parent().pk
    assert document.payload["data"]["document"]["title"] == "Price list"


def test_a_rolled_back_change_sends_nothing():
    _endpoint("https://hooks.example.com/all")
    article = _article("Rolled back")
    with schema_context("acme"), transaction.atomic():
        article.save_revision().publish()
        transaction.set_rollback(True)

    with schema_context("acme"):
        assert not WebhookDelivery.objects.exists()


def test_a_failure_is_logged_and_its_retry_scheduled_with_backoff():
    with webhook_receiver() as receiver:
        receiver.answers["/hook"] = [500]
        endpoint = _endpoint(receiver.url())
        with schema_context("acme"):
            webhooks.send_test_event(endpoint=endpoint, actor=None)

        failed, retry = _deliver_all()

    assert (failed.status, failed.response_status) == ("failed", 500)
    assert failed.error == "The endpoint answered 500."
    assert failed.response_excerpt == "answered 500"
    assert (retry.status, retry.attempt) == ("scheduled", 2)
    assert retry.message_id == failed.message_id
    assert 0.1 < (retry.scheduled_for - failed.attempted_at).total_seconds() < 2
    assert webhooks.retry_delay(1) < webhooks.retry_delay(2) < webhooks.retry_delay(3)


def test_retries_stop_after_a_day(settings):
    settings.CMS_WEBHOOKS_RETRY_FOR_SECONDS = 0
    with webhook_receiver() as receiver:
        receiver.answers["/hook"] = [503]
        endpoint = _endpoint(receiver.url())
        with schema_context("acme"):
            webhooks.send_test_event(endpoint=endpoint, actor=None)

        (failed,) = _deliver_all()

    assert "No more retries" in failed.error


def test_response_size_is_capped_and_a_slow_receiver_times_out(settings):
    settings.CMS_WEBHOOKS_TIMEOUT_SECONDS = 1
    settings.CMS_WEBHOOKS_RESPONSE_MAX_BYTES = 1000
    with webhook_receiver() as receiver:
        receiver.bodies["/big"] = b"x" * 5_000_000
        receiver.delays["/slow"] = 2.5
        big = _endpoint(receiver.url("/big"), ["webhook.test"])
        slow = _endpoint(receiver.url("/slow"), ["webhook.test"])
        with schema_context("acme"):
            webhooks.send_test_event(endpoint=big, actor=None)
            webhooks.send_test_event(endpoint=slow, actor=None)

        deliveries = {d.endpoint_id: d for d in _deliver_all() if d.attempt == 1}

    assert deliveries[big.pk].status == "succeeded"
    assert len(deliveries[big.pk].response_excerpt) == 1000
    assert deliveries[slow.pk].status == "failed"
    assert deliveries[slow.pk].error == "No answer within 1 s."
    assert deliveries[slow.pk].latency_ms < 2000


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}/hook", "127.0.0.1 is a loopback address."),
        ("http://10.20.30.40/hook", "10.20.30.40 is a private address."),
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254 is a link-local address.",
        ),
        ("http://localhost:{port}/hook", "localhost resolves to "),
        ("http://[::ffff:127.0.0.1]:{port}/hook", "127.0.0.1 is a loopback address."),
        ("http://0.0.0.0:{port}/hook", "0.0.0.0 is a"),
    ],
)
def test_private_destinations_are_refused_with_the_reason(settings, url, reason):
    settings.CMS_WEBHOOKS_ALLOW_PRIVATE = False
    with webhook_receiver() as receiver:
        endpoint = _endpoint(url.format(port=receiver.port))
        with schema_context("acme"):
            webhooks.send_test_event(endpoint=endpoint, actor=None)

        deliveries = _deliver_all()

    assert receiver.received == []
    assert [d.status for d in deliveries] == ["refused"]  # never retried
    assert reason in deliveries[0].error
    assert deliveries[0].response_status is None


def test_a_redirect_is_not_followed_by_default_and_checked_when_it_is(settings):
    settings.CMS_WEBHOOKS_ALLOW_PRIVATE = False
    settings.CMS_WEBHOOKS_ALLOW_NETWORKS = ["127.0.0.1/32"]  # the receiver only
    with webhook_receiver() as receiver:
        receiver.redirects["/metadata"] = "http://169.254.169.254/latest/"
        receiver.redirects["/neighbour"] = f"http://127.0.0.2:{receiver.port}/hook"
        metadata = _endpoint(receiver.url("/metadata"), ["webhook.test"])
        neighbour = _endpoint(receiver.url("/neighbour"), ["webhook.test"])
        with schema_context("acme"):
            webhooks.send_test_event(endpoint=metadata, actor=None)
        not_followed = _deliver_all()[0]

        settings.CMS_WEBHOOKS_MAX_REDIRECTS = 3
        with schema_context("acme"):
            webhooks.send_test_event(endpoint=metadata, actor=None)
            webhooks.send_test_event(endpoint=neighbour, actor=None)
        refused = [d for d in _deliver_all() if d.status == "refused"]

    assert not_followed.status == "failed"
    assert not_followed.response_status == 302
    assert "not followed (redirects are off)" in not_followed.error
    assert sorted(d.error for d in refused) == [
        "127.0.0.2 is a loopback address.",
        "169.254.169.254 is a link-local address.",
    ]
    assert receiver.at("/hook") == []


def test_http_is_refused_unless_the_operator_allows_it(settings):
    settings.CMS_WEBHOOKS_ALLOW_HTTP = False
    with pytest.raises(webhooks.WebhookError, match="Only https URLs are allowed"):
        _endpoint("http://hooks.example.com/")
    with pytest.raises(webhooks.WebhookError, match="Only https"):
        _endpoint("ftp://hooks.example.com/")
    settings.CMS_WEBHOOKS_ALLOW_HTTP = True
    endpoint = _endpoint("http://hooks.example.com/")
    settings.CMS_WEBHOOKS_ALLOW_HTTP = False  # turned off later: checked at delivery
    with schema_context("acme"):
        webhooks.send_test_event(endpoint=endpoint, actor=None)

    (delivery,) = _deliver_all()

    assert delivery.status == "refused"
    assert delivery.error == "Only https URLs are allowed, not http."


def test_the_plan_limits_endpoints_and_deliveries_per_hour():
    call_command(
        "plans",
        "update",
        "pro",
        "--feature",
        "webhook_endpoints=1",
        "--feature",
        "webhook_deliveries_per_hour=2",
    )
    endpoint = _endpoint("https://hooks.example.com/a")
    with pytest.raises(Exception, match="allows 1 webhook endpoints"):
        _endpoint("https://hooks.example.com/b")
    with schema_context("acme"):
        for _ in range(3):
            webhooks.send_test_event(endpoint=endpoint, actor=None)
        statuses = list(
            WebhookDelivery.objects.order_by("pk").values_list("status", "error")
        )

    assert [status for status, _ in statuses] == ["queued", "queued", "failed"]
    assert "webhook deliveries per hour are used up" in statuses[2][1]


def test_admin_registers_an_endpoint_sees_the_log_and_redelivers():
    client = Client(HTTP_HOST=ACME_HOST)
    client.post("/admin/login/", {"username": "admin", "password": "acme-admin-demo"})
    with webhook_receiver() as receiver:
        created = client.post(
            "/admin/content/webhooks/",
            {"url": receiver.url(), "events": ["page.published", "webhook.test"]},
        )
        secret = re.search(r'id="endpoint-secret">([^<]+)<', created.content.decode())[
            1
        ]
        with schema_context("acme"):
            endpoint = WebhookEndpoint.objects.get()
        page = f"/admin/content/webhooks/{endpoint.pk}/"

        client.post(page, {"action": "test"})
        _deliver_all()
        with schema_context("acme"):
            first = WebhookDelivery.objects.get()
        client.post(page, {"action": "redeliver", "delivery": first.pk})
        _deliver_all()
        log = client.get(page).content.decode()

    assert secret.startswith("whsec_")
    assert secret not in client.get("/admin/content/webhooks/").content.decode()
    assert secret not in log
    assert len(receiver.received) == 2
    assert {r.headers["webhook-id"] for r in receiver.received} == {first.message_id}
    for got in receiver.received:
        Webhook(secret).verify(got.body, got.headers)
    assert log.count('class="delivery-succeeded"') == 2
    assert "webhook.test" in log


def test_a_disabled_endpoint_is_shown_with_its_reason_in_the_admin():
    endpoint = _endpoint("https://hooks.example.com/x")
    with schema_context("acme"):
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            enabled=False, disabled_reason="Disabled automatically after 4 failed"
        )
    client = Client(HTTP_HOST=ACME_HOST)
    client.post("/admin/login/", {"username": "admin", "password": "acme-admin-demo"})

    listing = client.get("/admin/content/webhooks/").content.decode()

    assert "endpoint-disabled" in listing
    assert "Disabled automatically after 4 failed" in listing
