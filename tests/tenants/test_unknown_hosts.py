"""Unknown hosts cost no database query: the host map knows every tenant's host
names, so a flood of random Host headers is answered 404 from memory and never
evicts the tenants that are known."""

import uuid

from django.test import Client

from tenants.domains.ownership import domain_add, domain_remove
from tenants.models import Tenant
from tenants.registry import resolution
from tenants.registry.resolution import resolve_tenant


def _random_host() -> str:
    return f"{uuid.uuid4().hex[:12]}.example.net"


def test_unknown_hosts_are_answered_without_a_query(db, django_assert_num_queries):
    resolve_tenant("acme.localhost")  # the map (and its host names) loaded once

    with django_assert_num_queries(0):
        answers = [
            Client(HTTP_HOST=_random_host()).get("/").status_code for _ in range(25)
        ]

    assert answers == [404] * 25


def test_a_flood_of_unknown_hosts_does_not_evict_known_tenants(
    db, monkeypatch, django_assert_num_queries
):
    monkeypatch.setattr(resolution, "MAX_CACHED_HOSTS", 5)
    assert resolve_tenant("acme.localhost").schema_name == "acme"

    with django_assert_num_queries(0):
        for _ in range(50):
            assert resolve_tenant(_random_host()) is None
        assert resolve_tenant("acme.localhost").schema_name == "acme"


def test_a_domain_added_is_found_and_a_removed_one_forgotten(db):
    # a platform subdomain, which an operator's add verifies at once
    host = "new-acme.localhost"
    assert resolve_tenant(host) is None  # now known as unknown
    acme = Tenant.objects.select_related("plan").get(schema_name="acme")

    domain_add(tenant=acme, host=host, by_operator=True)
    found = resolve_tenant(host)
    domain_remove(tenant=acme, host=host)

    assert found is not None and found.schema_name == "acme"
    assert resolve_tenant(host) is None
