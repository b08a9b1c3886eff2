"""The page-cache edge, seen through the WSGI application gunicorn serves: a cached
public page is answered before Django's handler runs, with the same decision, headers
and observation as Django would give it; everything else reaches Django unchanged."""

import io
import sys
from dataclasses import dataclass

import pytest
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from cms_project.wsgi import application
from tenants.metering import flush
from tenants.models import UsageDay
from tenants.tariffs.admission import in_flight
from tests.conftest import ACME_HOST, GLOBEX_HOST, all_slots_taken

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_the_test_transaction():
    """Django's handler closes the database connection after each request (as the
    test client's handler does not): that would end the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


ARTICLE = "/acme-launches-the-mark-iv/"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def wsgi(path: str, *, host: str = ACME_HOST, method: str = "GET", **meta) -> Answer:
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": host,
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        **meta,
    }
    started = {}

    def start_response(status, headers, exc_info=None):
        started["status"] = int(status.split()[0])
        started["headers"] = dict(headers)

    result = application(environ, start_response)
    body = b"".join(result)
    if hasattr(result, "close"):
        result.close()
    return Answer(started["status"], started["headers"], body)


@pytest.fixture
def django_runs():
    """How many requests reached Django's handler."""
    runs = []

    def count(**kwargs):
        runs.append(1)

    request_started.connect(count)
    yield runs
    request_started.disconnect(count)


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
