"""Caddy's on-demand TLS ``ask`` endpoint on the operator's public host."""

import pytest
from django.test import Client

from tenants.domains import ownership
from tenants.models import Domain, Tenant

pytestmark = pytest.mark.django_db

ASK = "/_tls/ask"


@pytest.fixture
def operator() -> Client:
    return Client(HTTP_HOST="localhost")


def ask(client: Client, name: str):
    return client.get(ASK, {"domain": name})


def add_verified(slug: str, host: str) -> Domain:
    tenant = Tenant.objects.get(schema_name=slug)
    domain = ownership.domain_add(tenant=tenant, host=host)
    Domain.objects.filter(pk=domain.pk).update(status="verified")
    ownership.invalidate_tenant_map()
    return domain


def test_only_verified_domains_of_active_tenants_get_certificates(operator):
    add_verified("acme", "shop.example.test")
    pending = ownership.domain_add(
        tenant=Tenant.objects.get(schema_name="globex"), host="wait.example.test"
    )
    allowed = ask(operator, "SHOP.example.test.")
    assert (allowed.status_code, allowed.content) == (200, b"ok\n")
    assert ask(operator, "acme.localhost").status_code == 200

    refusals = [
        ask(operator, name)
        for name in (
            pending.domain,  # pending
            "unknown.example.test",  # nobody's
            "localhost",  # the operator's own
            "bad host!",
            "x" * 300,
            "",
        )
    ]
    assert {(r.status_code, r.content) for r in refusals} == {
        (403, b"no certificate for this name\n")
    }


def test_suspending_a_tenant_or_removing_a_domain_stops_issuance(operator):
    add_verified("acme", "shop.example.test")
    add_verified("acme", "other.example.test")
    assert ask(operator, "shop.example.test").status_code == 200

    ownership.domain_remove(
        tenant=Tenant.objects.get(schema_name="acme"), host="other.example.test"
    )
    assert ask(operator, "other.example.test").status_code == 403

    from django.core.management import call_command

    call_command("tenants", "suspend", "acme")
    assert ask(operator, "shop.example.test").status_code == 403
    assert ask(operator, "acme.localhost").status_code == 403
    call_command("tenants", "resume", "acme")
    assert ask(operator, "shop.example.test").status_code == 200


def test_unknown_names_cost_no_database_query(operator, django_assert_num_queries):
    add_verified("acme", "shop.example.test")
    assert ask(operator, "shop.example.test").status_code == 200  # cache warmed
    with django_assert_num_queries(0):
        for number in range(50):
            assert ask(operator, f"random-{number}.example.test").status_code == 403
        assert ask(operator, "shop.example.test").status_code == 200


def test_a_domain_verified_by_another_process_a_moment_ago_is_allowed(
    operator, settings
):
    """Caddy asks when the first visitor arrives, which may be right after the
    owner pressed "Verify now" on another worker: this worker's routine check of
    the host map's generation has not come yet, and must not be waited for."""
    from tenants.redis_store.keys import bump_generation, cache_redis
    from tenants.registry.resolution import generation_key

    settings.CMS_TENANT_CACHE_CHECK_SECONDS = 3600
    pending = ownership.domain_add(
        tenant=Tenant.objects.get(schema_name="acme"), host="fresh.example.test"
    )
    assert ask(operator, "fresh.example.test").status_code == 403  # set loaded
    # what another process's verification does: the row, then the generation
    Domain.objects.filter(pk=pending.pk).update(status="verified")
    bump_generation(cache_redis(), generation_key())

    assert ask(operator, "fresh.example.test").status_code == 200


def test_the_ask_endpoint_is_rate_limited_per_client(operator, settings):
    settings.CMS_TLS_ASK_RATE = "3/m"
    answers = [ask(operator, "acme.localhost").status_code for _ in range(5)]
    assert answers == [200, 200, 200, 429, 429]
    other = Client(HTTP_HOST="localhost", REMOTE_ADDR="127.0.0.2")
    assert ask(other, "acme.localhost").status_code == 200


def test_the_ask_endpoint_is_only_on_the_operators_host():
    answer = Client(HTTP_HOST="acme.localhost").get(
        ASK, {"domain": "acme.localhost"}, follow=True
    )
    assert answer.status_code == 404


def test_deleting_a_tenant_stops_issuance_for_its_domains(operator):
    from tenants.provisioning.creation import tenant_create, tenant_delete

    tenant_create(
        slug="leaving", name="Leaving", domains=["leaving.localhost"], plan="pro"
    )
    add_verified("leaving", "leaving.example.test")
    assert ask(operator, "leaving.example.test").status_code == 200

    tenant_delete(slug="leaving", confirm=True)

    assert ask(operator, "leaving.example.test").status_code == 403
    assert ask(operator, "leaving.localhost").status_code == 403
