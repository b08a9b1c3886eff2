"""Tariff-driven rate limits, seen through HTTP at a tenant's host."""

import json

import pytest
from django.core.management import call_command
from django.test import override_settings

pytestmark = pytest.mark.django_db


def _set_limit(name: str, value: int, plan: str = "pro") -> None:
    call_command("plans", "update", plan, "--limit", f"{name}={value}")


def test_public_pages_carry_ratelimit_headers_from_the_plan(acme_client):
    response = acme_client.get("/")

    assert response.status_code == 200
    assert response["RateLimit-Policy"] == '"public-reads-per-minute";q=3000;w=60'
    assert response["RateLimit"].startswith('"public-reads-per-minute";r=2999;t=')


def test_visitor_over_the_plan_gets_friendly_429_page(acme_client):
    _set_limit("public_reads_per_minute", 3)

    statuses = [acme_client.get("/").status_code for _ in range(3)]
    limited = acme_client.get("/")

    assert statuses == [200, 200, 200]
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) >= 1
    assert "very busy right now" in limited.content.decode()
    assert limited["RateLimit-Policy"] == '"public-reads-per-minute";q=3;w=60'
    assert limited["RateLimit"].startswith('"public-reads-per-minute";r=0;')


def test_the_site_search_spends_the_public_reads_like_any_page(acme_client):
    """The pod's own door to the search: behind the edge's pace, searches count
    against the plan's public reads with the pages, and are refused with them."""
    _set_limit("public_reads_per_minute", 3)

    assert acme_client.get("/").status_code == 200
    searches = [acme_client.get("/search/", {"q": f"q{n}"}) for n in range(3)]

    assert [response.status_code for response in searches] == [200, 200, 429]
    assert searches[-1]["RateLimit-Policy"] == '"public-reads-per-minute";q=3;w=60'
    assert acme_client.get("/").status_code == 429


def test_api_reads_and_writes_have_own_allowances_and_json_429(acme_client):
    _set_limit("api_reads_per_minute", 2)

    assert acme_client.get("/api/v2/pages/").status_code == 200
    assert acme_client.get("/api/v2/pages/").status_code == 200
    limited = acme_client.get("/api/v2/pages/")

    assert limited.status_code == 429
    body = json.loads(limited.content)
    assert body["error"] == "rate_limited"
    assert body["limit"] == "api_reads_per_minute"
    assert body["retry_after"] == int(limited["Retry-After"])
    # Public pages are counted separately and still served.
    assert acme_client.get("/").status_code == 200
    write = acme_client.post("/api/v2/pages/")
    assert write["RateLimit-Policy"].startswith('"api-writes-per-minute";')


def test_plan_change_applies_at_once(acme_client):
    assert acme_client.get("/")["RateLimit-Policy"].endswith("q=3000;w=60")

    call_command("tenants", "set-plan", "acme", "free")

    assert acme_client.get("/")["RateLimit-Policy"].endswith("q=120;w=60")


def test_admin_is_not_counted_against_public_quota(acme_client):
    _set_limit("public_reads_per_minute", 1)
    assert (
        acme_client.post(
            "/admin/login/", {"username": "editor", "password": "acme-editor-demo"}
        ).status_code
        == 302
    )
    assert acme_client.get("/").status_code == 200
    assert acme_client.get("/").status_code == 429

    for _ in range(5):
        assert acme_client.get("/admin/").status_code == 200
    assert "RateLimit" not in acme_client.get("/admin/pages/")


def test_login_brute_force_is_limited_per_ip_and_username(acme_client, settings):
    settings.CMS_LOGIN_RATE_PER_USER = "5/m"
    wrong = {"username": "editor", "password": "guess"}

    attempts = [acme_client.post("/admin/login/", wrong).status_code for _ in range(5)]
    blocked = acme_client.post("/admin/login/", wrong)
    right = acme_client.post(
        "/admin/login/", {"username": "editor", "password": "acme-editor-demo"}
    )
    other_user = acme_client.post(
        "/admin/login/", {"username": "admin", "password": "x"}
    )

    assert attempts == [200] * 5  # the form again, with an error
    assert blocked.status_code == 429
    assert right.status_code == 429  # even the right password waits out the window
    assert other_user.status_code == 200
    assert acme_client.get("/admin/login/").status_code == 200  # GETs never count


REDIS_DOWN = "redis://127.0.0.1:1/0"


def _caches_pointing_at(url: str) -> dict:
    from django.conf import settings

    return {
        alias: {**config, "LOCATION": url} for alias, config in settings.CACHES.items()
    }


def test_redis_down_fails_open_and_is_counted(acme_client):
    from tenants.tariffs.limits import limiter_failures

    before = limiter_failures["count"]
    with override_settings(CACHES=_caches_pointing_at(REDIS_DOWN)):
        response = acme_client.get("/")

    assert response.status_code == 200
    assert "Acme launches the Mark IV" in response.content.decode()
    assert "RateLimit" not in response
    assert limiter_failures["count"] > before


def test_redis_down_can_fail_closed(acme_client):
    with override_settings(
        CACHES=_caches_pointing_at(REDIS_DOWN), CMS_RATELIMIT_FAIL_CLOSED=True
    ):
        response = acme_client.get("/")
        api = acme_client.get("/api/v2/pages/")

    assert response.status_code == 503
    assert response["Retry-After"]
    assert api.status_code == 503
    assert json.loads(api.content)["error"]
