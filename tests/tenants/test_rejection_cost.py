"""A flooding tenant's rejected requests must stay cheap for the shared pool: a 429
(over the plan's rate) or a 503 (over its concurrency cap) is answered from Redis
alone, without touching PostgreSQL, so the flood cannot occupy database connections
that quiet tenants need (see the noisy-neighbour benchmark)."""

import contextlib
import datetime as dt

import pytest
from django.core.management import call_command

from tenants.metering import flush, reports
from tenants.models import UsageDay
from tenants.registry.resolution import resolve_tenant
from tenants.tariffs.admission import acquire_slot, release_slot
from tests.conftest import all_slots_taken

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
    # decided and metered in one round trip (no slot was taken to release)
    assert len([c for c in redis_commands if c != "GET"]) == 1, redis_commands


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


@pytest.mark.parametrize("status", [429, 503])
def test_a_refusal_is_metered_in_the_round_trip_that_refused_it(
    acme_client, redis_commands, status
):
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=1")
    assert acme_client.get("/").status_code == 200
    refusing = all_slots_taken("acme") if status == 503 else contextlib.nullcontext()
    with refusing:
        redis_commands.clear()
        response = acme_client.get("/")
        round_trips = [c for c in redis_commands if c != "GET"]

    assert response.status_code == status
    assert round_trips == ["EVALSHA"], redis_commands
    # counted where the regular metering would have: ``top``'s window, the day
    (acme,) = [row for row in reports.top_tenants() if row.schema == "acme"]
    assert (acme.requests, acme.rejected_429, acme.rejected_503) == (
        (2, 1, 0) if status == 429 else (2, 0, 1)
    )
    flush.flush_usage()
    day = UsageDay.objects.get(
        tenant__schema_name="acme", day=dt.datetime.now(dt.UTC).date()
    )
    assert (day.public_reads, day.rejected_429, day.rejected_503) == (
        (1, 1, 0) if status == 429 else (1, 0, 1)
    )


def test_the_refusal_page_follows_a_change_of_templates(
    acme_client, settings, tmp_path
):
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=1")
    acme_client.get("/")
    assert b"This site is very busy right now" in acme_client.get("/").content
    (tmp_path / "tenants").mkdir()
    (tmp_path / "tenants" / "rate_limited.html").write_text("Wait {{ retry_after }} s.")

    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}
    ]
    refused = acme_client.get("/")

    assert refused.status_code == 429
    assert refused.content == f"Wait {refused['Retry-After']} s.".encode()
