"""The tenant gate: suspended tenants answer 503, resuming restores the site."""

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_suspended_tenant_gets_503_page_and_resume_restores_it(acme_client):
    call_command("tenants", "suspend", "acme")

    suspended = acme_client.get("/")

    assert suspended.status_code == 503
    assert "temporarily unavailable" in suspended.content.decode()
    assert suspended["Retry-After"]
    assert acme_client.get("/admin/login/").status_code == 503

    call_command("tenants", "resume", "acme")

    assert acme_client.get("/").status_code == 200


def test_host_lookup_ignores_port_and_case(client):
    response = client.get("/", HTTP_HOST="ACME.localhost:8000")

    assert response.status_code == 200
    assert "Acme Rockets" in response.content.decode()


def test_resolution_needs_no_query_once_cached(acme_client, django_assert_num_queries):
    acme_client.get("/")  # warm the host map and Wagtail's caches

    from tenants.registry.resolution import resolve_tenant

    with django_assert_num_queries(0):
        tenant = resolve_tenant("acme.localhost")
    assert tenant.schema_name == "acme"


def test_plan_change_reaches_the_host_map(acme_client):
    from tenants.registry.resolution import resolve_tenant

    assert resolve_tenant("acme.localhost").plan.name == "pro"

    call_command("tenants", "set-plan", "acme", "free")

    assert resolve_tenant("acme.localhost").plan.name == "free"
