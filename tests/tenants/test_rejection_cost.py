"""A flooding tenant's rejected requests must stay cheap for the shared pool: a 429
(over the plan's rate) or a 503 (over its concurrency cap) is answered from Redis
alone, without touching PostgreSQL, so the flood cannot occupy database connections
that quiet tenants need (see the noisy-neighbour benchmark)."""

import pytest
from django.core.management import call_command

from tenants.registry.resolution import resolve_tenant
from tenants.tariffs.admission import acquire_slot, release_slot

pytestmark = pytest.mark.django_db


def test_request_over_the_rate_limit_is_refused_without_a_query(
    acme_client, django_assert_num_queries, redis_commands
):
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=1")
    assert acme_client.get("/").status_code == 200
    redis_commands.clear()

    with django_assert_num_queries(0):
        response = acme_client.get("/")

    assert response.status_code == 429
    # decided in one round trip, released in the metering one
    assert len([c for c in redis_commands if c != "GET"]) == 2, redis_commands


def test_request_over_the_concurrency_cap_is_refused_without_a_query(
    acme_client, django_assert_num_queries
):
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=2")
    assert acme_client.get("/").status_code == 200  # one of two reads used
    acme = resolve_tenant("acme.localhost")
    cap = acme.plan.concurrent_requests
    held = [acquire_slot("acme", cap) for _ in range(cap)]
    assert all(held)

    with django_assert_num_queries(0):
        response = acme_client.get("/")

    assert response.status_code == 503
    for token in held:
        release_slot("acme", token)
    # refused before the rate limit: the refusal did not use up the second read
    assert acme_client.get("/").status_code == 200
    assert acme_client.get("/").status_code == 429
