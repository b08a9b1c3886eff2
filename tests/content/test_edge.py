"""The page-cache edge, seen through the WSGI application gunicorn serves: a cached
public page is answered before Django's handler runs, with the same decision, headers
and observation as Django would give it; everything else reaches Django unchanged."""

import logging

import pytest
from django.core.management import call_command

from tenants.metering import flush
from tenants.models import UsageDay
from tenants.request_path.local_hits import local_hits
from tenants.tariffs.admission import in_flight
from tests.conftest import GLOBEX_HOST, all_slots_taken
from tests.wsgi_app import ARTICLE, wsgi

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("wsgi_app")]


def test_a_hit_is_answered_before_djangos_handler(
    django_runs, django_assert_num_queries
):
    miss = wsgi(ARTICLE)
    assert len(django_runs) == 1

    with django_assert_num_queries(0):
        hit = wsgi(ARTICLE, HTTP_X_REQUEST_ID="edge-test-1")

    assert len(django_runs) == 1
    assert (miss.headers["X-Page-Cache"], hit.headers["X-Page-Cache"]) == (
        "miss",
        "hit",
    )
    assert hit.status == 200
    assert hit.body == miss.body
    assert hit.headers["X-Request-ID"] == "edge-test-1"
    assert "Cookie" in hit.headers["Vary"]
    assert hit.headers["RateLimit"].startswith('"public-reads-per-minute";')
    # headers of the middleware outside the cache (security) and inside it (framing)
    for name in ("X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options"):
        assert hit.headers[name] == miss.headers[name], name
    assert wsgi(ARTICLE, method="HEAD").body == b""


def test_edge_hits_count_against_the_plan_are_metered_and_release_their_slot(
    django_runs,
):
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=3")

    answers = [wsgi("/") for _ in range(4)]

    assert [a.status for a in answers] == [200, 200, 200, 429]
    assert [a.headers.get("X-Page-Cache") for a in answers[:3]] == [
        "miss",
        "hit",
        "hit",
    ]
    assert answers[2].headers["RateLimit"].startswith('"public-reads-per-minute";r=0;')
    # only the miss reached Django: the hits and the refusal were answered before it
    assert len(django_runs) == 1
    refused = answers[3]
    assert refused.headers["Retry-After"] == refused.headers["RateLimit"].split("t=")[1]
    assert "X-Request-ID" in refused.headers
    assert b"This site is very busy right now" in refused.body
    assert in_flight("acme") == 0
    flush.flush_usage()
    day = UsageDay.objects.get(tenant__schema_name="acme")
    assert (day.public_reads, day.rejected_429) == (3, 1)


def test_over_the_concurrency_cap_a_cached_page_is_refused_without_using_a_read():
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=3")
    assert wsgi("/").status == 200
    assert wsgi("/").headers["X-Page-Cache"] == "hit"

    with all_slots_taken("acme"):
        refused = wsgi("/")

    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    assert wsgi("/").status == 200  # the third read: the refusal gave its count back
    assert wsgi("/").status == 429
    assert in_flight("acme") == 0


def test_editors_posts_and_other_tenants_are_not_answered_from_acmes_cache(
    django_runs,
):
    wsgi(ARTICLE)
    wsgi("/", host=GLOBEX_HOST)
    before = len(django_runs)

    editor = wsgi(ARTICLE, HTTP_COOKIE="cms_session=not-a-real-session")
    post = wsgi("/", method="POST")
    globex = wsgi("/", host=GLOBEX_HOST)

    assert len(django_runs) == before + 2  # the editor and the POST
    assert "X-Page-Cache" not in editor.headers
    assert "X-Page-Cache" not in post.headers
    assert globex.headers["X-Page-Cache"] == "hit"
    assert b"Globex Corporation" in globex.body
    assert b"Acme Rockets" not in globex.body


def test_when_the_round_trip_fails_django_decides_once(monkeypatch):
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=2")
    tries = []

    def unreachable(source):
        tries.append(1)
        raise ConnectionError("Redis is down")

    monkeypatch.setattr("tenants.request_path.decision.script", unreachable)

    answer = wsgi("/")

    assert answer.status == 200
    assert len(tries) == 1  # the middleware did not try again
    # admission and django-ratelimit's decorator decided instead, counting it once
    assert answer.headers["RateLimit"].startswith('"public-reads-per-minute";r=1;')
    assert in_flight("acme") == 0


def test_a_late_reply_is_tried_once_more_so_a_hit_needs_no_database(
    monkeypatch, django_runs
):
    """A Redis reply later than the socket timeout (a busy machine) gets one more
    try: the cached page is still answered at the edge, without Django (which would
    need the database). A second late reply leaves the request to Django."""
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from tenants.request_path import decision

    wsgi(ARTICLE)  # cached
    real_script = decision.script
    late = []

    def late_once(source):
        run = real_script(source)

        def call(**kwargs):
            if len(late) < late_replies:
                late.append(1)
                raise RedisTimeoutError("Timeout reading from socket")
            return run(**kwargs)

        return call

    monkeypatch.setattr(decision, "script", late_once)
    late_replies = 1
    runs_before = len(django_runs)
    hit = wsgi(ARTICLE)
    assert (hit.status, hit.headers["X-Page-Cache"]) == (200, "hit")
    assert len(django_runs) == runs_before and len(late) == 1
    assert in_flight("acme") == 0

    late.clear()
    late_replies = 2
    local_hits.forget()  # else the page just answered would come from memory
    fallen_through = wsgi(ARTICLE)
    assert fallen_through.status == 200
    assert len(django_runs) == runs_before + 1 and len(late) == 2


# The edge builds a hit's header list by hand (no Django response): each header it
# adds must be the one Django's path gives the same page. A hit alone says
# ``Vary: Cookie`` (a rendered page varies only when it read the session).
HIT_ONLY = {"X-Page-Cache", "X-Request-ID", "RateLimit", "Vary"}


def test_a_hit_has_every_header_of_the_rendered_page_with_the_same_values():
    miss = wsgi(ARTICLE)
    hit = wsgi(ARTICLE)

    assert hit.headers["X-Page-Cache"] == "hit"
    assert set(hit.headers) - {"Vary"} == set(miss.headers)
    assert hit.headers["Vary"] == "Cookie"
    for name in set(miss.headers) - HIT_ONLY:
        assert hit.headers[name] == miss.headers[name], name
    assert hit.headers["Content-Length"] == str(len(hit.body))
    assert hit.headers["RateLimit-Policy"] == miss.headers["RateLimit-Policy"]


def test_a_hit_gets_the_security_headers_of_the_current_settings(settings):
    wsgi(ARTICLE)
    settings.SECURE_REFERRER_POLICY = "no-referrer"
    settings.SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin-allow-popups"
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True

    plain = wsgi(ARTICLE)
    secure = wsgi(ARTICLE, **{"wsgi.url_scheme": "https"})

    assert (plain.headers["X-Page-Cache"], secure.headers["X-Page-Cache"]) == (
        "hit",
        "hit",
    )
    assert plain.headers["Referrer-Policy"] == "no-referrer"
    assert plain.headers["Cross-Origin-Opener-Policy"] == "same-origin-allow-popups"
    assert plain.headers["X-Content-Type-Options"] == "nosniff"
    # HSTS only on an answer over HTTPS, as SecurityMiddleware gives it
    assert "Strict-Transport-Security" not in plain.headers
    assert (
        secure.headers["Strict-Transport-Security"] == "max-age=3600; includeSubDomains"
    )


def test_a_hit_leaves_the_same_access_event_as_a_rendered_page(caplog):
    caplog.set_level(logging.INFO, logger="cms.access")
    wsgi(ARTICLE, HTTP_X_REQUEST_ID="edge-miss")
    hit = wsgi(ARTICLE, HTTP_X_REQUEST_ID="edge-hit", REMOTE_ADDR="198.51.100.7")

    events = {r.request_id: r for r in caplog.records if r.name == "cms.access"}
    assert hit.headers["X-Request-ID"] == "edge-hit"
    miss_event, hit_event = events["edge-miss"], events["edge-hit"]
    for field in ("tenant", "method", "path", "status", "user_id"):
        assert getattr(hit_event, field) == getattr(miss_event, field), field
    assert (hit_event.tenant, hit_event.status, hit_event.path) == (
        "acme",
        200,
        ARTICLE,
    )
    assert hit_event.client_ip == "198.51.100.7"
    assert hit_event.duration_ms >= 0


def test_a_nul_in_the_address_is_refused_even_when_the_page_is_cached(django_runs):
    assert wsgi(ARTICLE).headers["X-Page-Cache"] == "miss"
    assert wsgi(ARTICLE, QUERY_STRING="utm_source=x").headers["X-Page-Cache"] == "hit"

    for answer in (
        wsgi(ARTICLE, QUERY_STRING="utm_source=%00"),
        wsgi(ARTICLE, QUERY_STRING="b\x00=1"),
        wsgi(ARTICLE + "\x00"),
    ):
        assert answer.status == 400
        assert b"NUL character" in answer.body
        assert "X-Page-Cache" not in answer.headers
