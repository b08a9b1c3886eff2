"""A tenant admin's integrations journey in a real browser: creates an API token and a
webhook endpoint under Settings, publishes a page, and sees the signed delivery that a
real receiver got in the endpoint's log (gunicorn and a real Celery worker)."""

import http.client
import re

from playwright.sync_api import expect
from standardwebhooks.webhooks import Webhook

from tests.content.webhook_receiver import webhook_receiver
from tests.e2e.conftest import SHOP, orm_access
from tests.e2e.test_editor_journeys import _publish, _start_article
from tests.integration import wait_for

ADMIN = "hookadmin"
ADMIN_PASSWORD = "hook-admin-1"


def _make_admin(django_db_blocker) -> None:
    from django.contrib.auth import get_user_model
    from django_tenants.utils import schema_context

    with orm_access(django_db_blocker), schema_context(SHOP.slug):
        User = get_user_model()
        if not User.objects.filter(username=ADMIN).exists():
            User.objects.create_superuser(ADMIN, f"{ADMIN}@{SHOP.host}", ADMIN_PASSWORD)


def _api_get(port: int, token: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            "GET",
            "/api/v2/pages/",
            headers={"Host": SHOP.host, "Authorization": f"Bearer {token}"},
        )
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_admin_connects_a_token_and_a_webhook_and_sees_the_delivery(
    journey, celery_worker, django_db_blocker
):
    _make_admin(django_db_blocker)
    page = journey.page
    with webhook_receiver() as receiver:
        with journey.step("the tenant's admin signs in"):
            page.goto(journey.url(SHOP, "/admin/login/"))
            page.get_by_label("Username").fill(ADMIN)
            page.get_by_label("Password").fill(ADMIN_PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_url(journey.url(SHOP, "/admin/"))

        with journey.step("Settings -> API tokens: a read token, shown once"):
            page.get_by_role("button", name="Settings").click()
            page.get_by_role("link", name="API tokens").click()
            page.get_by_label("Name").fill("Static site build")
            page.get_by_label("Read (content API)").check()
            page.get_by_role("button", name="Create token").click()
            secret = page.locator("#token-secret").inner_text()
            assert secret.startswith("wagtail_")

        with journey.step("the token reads the API; its last use is shown"):
            assert _api_get(journey.port, secret) == 200
            page.goto(journey.url(SHOP, "/admin/content/api-tokens/"))
            tokens = page.locator("#tokens")
            expect(tokens).to_contain_text("Static site build")
            expect(tokens).to_contain_text("from 127.0.0.1")
            expect(page.locator("#token-secret")).to_have_count(0)

        with journey.step("Settings -> Webhooks: an endpoint for published pages"):
            page.get_by_role("button", name="Settings").click()
            page.get_by_role("link", name="Webhooks").click()
            page.get_by_label("Url").fill(receiver.url())
            page.get_by_label("Page published").check()
            page.get_by_role("button", name="Add endpoint").click()
            signing_secret = page.locator("#endpoint-secret").inner_text()
            assert signing_secret.startswith("whsec_")

        with journey.step("the admin publishes an article"):
            _start_article(
                journey, SHOP, title="Webhook launch", text="Announced by webhook."
            )
            _publish(journey)
            # publishing is a background job: the worker publishes, then delivers
            expect(
                page.get_by_text("“Webhook launch” is saved and queued for publishing.")
            ).to_be_visible()

        with journey.step("the receiver got the signed event"):
            wait_for(
                lambda: receiver.at("/hook"),
                timeout=60,
                what=f"the delivery (worker log: {celery_worker})",
            )
            got = receiver.at("/hook")[0]
            payload = Webhook(signing_secret).verify(got.body, got.headers)
            assert payload["type"] == "page.published"
            assert payload["data"]["page"]["title"] == "Webhook launch"
            assert payload["data"]["actor"]["username"] == ADMIN

        with journey.step("the endpoint's log shows the delivery"):
            page.goto(journey.url(SHOP, "/admin/content/webhooks/"))
            page.get_by_role("link", name=receiver.url()).click()
            row = page.locator("#deliveries tr.delivery-succeeded").first
            expect(row).to_contain_text("page.published")
            expect(row).to_contain_text("200")
            expect(row).to_contain_text(re.compile(r"\d+ ms"))
            expect(row.get_by_role("button", name="Redeliver")).to_be_visible()
