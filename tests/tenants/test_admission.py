"""The per-tenant concurrency cap: immediate 503 over the cap, slots always released."""

import time

import pytest
from django.test import RequestFactory

from tenants.registry.resolution import resolve_tenant
from tenants.request_path.middleware import TenantAdmissionMiddleware
from tenants.tariffs.admission import acquire_slot, in_flight

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme():
    return resolve_tenant("acme.localhost")


def test_request_over_the_cap_gets_immediate_503(acme_client, acme):
    cap = acme.plan.concurrent_requests
    held = [acquire_slot("acme", cap) for _ in range(cap)]
    assert all(held)

    response = acme_client.get("/")

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert "One moment" in response.content.decode()
    # The admin is exempt: editors are never locked out by their visitors.
    assert acme_client.get("/admin/login/").status_code == 200


def test_slot_is_released_after_a_response(acme_client):
    assert acme_client.get("/").status_code == 200
    assert in_flight("acme") == 0


def test_slot_is_released_when_the_view_raises(acme):
    seen = {}

    def exploding_view(request):
        seen["in_flight"] = in_flight("acme")
        raise RuntimeError("boom")

    middleware = TenantAdmissionMiddleware(exploding_view)
    request = RequestFactory().get("/", HTTP_HOST="acme.localhost")
    request.tenant = acme

    with pytest.raises(RuntimeError):
        middleware(request)

    assert seen["in_flight"] == 1
    assert in_flight("acme") == 0


def test_slots_of_a_dead_worker_expire(acme, settings):
    settings.CMS_CONCURRENCY_LEASE_SECONDS = 0.3
    cap = acme.plan.concurrent_requests
    for _ in range(cap):
        assert acquire_slot("acme", cap)  # never released: the worker "died"
    assert acquire_slot("acme", cap) is None

    time.sleep(0.4)

    assert acquire_slot("acme", cap) is not None


def test_other_tenants_are_not_affected_by_a_full_tenant(globex_client, acme):
    cap = acme.plan.concurrent_requests
    for _ in range(cap):
        acquire_slot("acme", cap)

    assert globex_client.get("/").status_code == 200
