"""Settings -> Domains in a tenant's Wagtail admin, over HTTP."""

import re

import pytest
from django.test import Client

from tenants.models import Domain
from tests.conftest import ACME_HOST, GLOBEX_HOST

pytestmark = pytest.mark.django_db


def admin(host: str, password: str) -> Client:
    client = Client(HTTP_HOST=host)
    response = client.post("/admin/login/", {"username": "admin", "password": password})
    assert response.status_code == 302
    return client


def messages_of(response) -> str:
    return " ".join(str(message) for message in response.context["messages"])


def act(client: Client, **data):
    return client.post("/admin/domains/", data, follow=True)


def test_an_admin_adds_verifies_makes_primary_and_removes_a_domain(published):
    client = admin(ACME_HOST, "acme-admin-demo")
    page = client.get("/admin/domains/")
    assert page.status_code == 200
    assert "allows 3 custom domains; 0 in use" in page.content.decode()

    added = act(client, action="add", domain="Shop.Example.Test", method="dns")
    domain = Domain.objects.get(domain="shop.example.test")
    body = added.content.decode()
    assert domain.status == "pending" and domain.tenant.schema_name == "acme"
    assert "_cms-challenge.shop.example.test</code> with the value <code " in body
    assert f'<code class="token">{domain.verification_token}</code>' in body

    refused = act(client, action="verify", domain="shop.example.test")
    assert "No TXT record at _cms-challenge.shop.example.test" in messages_of(refused)
    published.publish_txt("_cms-challenge.shop.example.test", domain.verification_token)
    verified = act(client, action="verify", domain="shop.example.test")
    assert "shop.example.test is verified" in messages_of(verified)

    primary = act(client, action="primary", domain="shop.example.test")
    assert "now your primary domain" in messages_of(primary)
    assert Domain.objects.get(domain="shop.example.test").is_primary
    # the admin itself now lives on the primary domain
    assert client.get("/admin/domains/")["Location"].startswith(
        "https://shop.example.test/admin/domains/"
    )

    shop = admin("shop.example.test", "acme-admin-demo")
    back = shop.post("/admin/domains/", {"action": "primary", "domain": ACME_HOST})
    assert back.status_code == 302
    removed = act(client, action="remove", domain="shop.example.test")
    assert "Removed shop.example.test" in messages_of(removed)
    assert not Domain.objects.filter(domain="shop.example.test").exists()


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ("bücher.example.test", "xn--bcher-kva.example.test"),
        ("*.example.test", "Wildcard domains"),
        ("taken.example.test", "already claimed by another site"),
        ("globex.localhost", "belongs to the platform"),
        ("new.localhost", "belongs to the platform"),
        ("localhost", "operator's own public host"),
        ("not a domain", "Invalid domain"),
    ],
)
def test_bad_domains_get_a_message_and_change_nothing(domain, message):
    from tenants.domains.ownership import domain_add
    from tenants.models import Tenant

    domain_add(
        tenant=Tenant.objects.get(schema_name="globex"), host="taken.example.test"
    )
    client = admin(ACME_HOST, "acme-admin-demo")
    before = list(Domain.objects.values_list("domain", "tenant_id", "status"))
    response = act(client, action="add", domain=domain, method="dns")
    assert response.status_code == 200
    assert message in messages_of(response)
    assert list(Domain.objects.values_list("domain", "tenant_id", "status")) == before


def test_the_plans_count_and_hsts_switch_are_shown_and_enforced():
    client = admin(GLOBEX_HOST, "globex-admin-demo")  # starter: 1 domain, no HSTS
    assert (
        "Your plan does not include HSTS"
        in client.get("/admin/domains/").content.decode()
    )
    act(client, action="add", domain="one.example.test", method="dns")
    second = act(client, action="add", domain="two.example.test", method="http")
    assert "allows 1 domains" in messages_of(second)
    assert not Domain.objects.filter(domain="two.example.test").exists()
    hsts = act(client, action="hsts-on")
    assert "does not include" in messages_of(hsts)


def test_only_the_tenants_administrators_see_the_page():
    client = Client(HTTP_HOST=ACME_HOST)
    assert client.get("/admin/domains/").status_code == 302  # to the login
    login = {"username": "editor", "password": "acme-editor-demo"}
    assert client.post("/admin/login/", login).status_code == 302
    refused = client.get("/admin/domains/")  # Wagtail's answer to PermissionDenied
    assert (refused.status_code, refused["Location"]) == (302, "/admin/")
    posted = client.post(
        "/admin/domains/", {"action": "add", "domain": "e.example.test"}
    )
    assert posted.status_code == 302
    assert not Domain.objects.filter(domain="e.example.test").exists()
    assert re.search(r"/admin/domains/", client.get("/admin/").content.decode()) is None
