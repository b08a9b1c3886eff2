"""The per-tenant page cache, seen through HTTP at each tenant's host.

A page is made stale behind the cache's back (a queryset ``update`` sends no signal),
so what a visitor sees tells whether the page came from the cache or was rendered.
"""

import time

import pytest
from django.core.management import call_command
from django.test import Client, RequestFactory
from django_ratelimit.core import get_usage
from django_redis import get_redis_connection
from django_tenants.utils import schema_context

from content.models import ArticlePage
from tenants.metering import flush
from tenants.models import UsageDay
from tenants.registry.resolution import resolve_tenant
from tenants.tariffs.admission import acquire_slot, in_flight
from tenants.tariffs.limits import plan_rate, rate_counter, rate_key
from tests.conftest import ACME_HOST
from tests.rate_windows import clear_of_window_edges

pytestmark = pytest.mark.django_db

ARTICLE = "/acme-launches-the-mark-iv/"
OLD_TITLE = "Acme launches the Mark IV"


def _retitle_behind_the_cache(schema: str, slug: str, title: str) -> None:
    with schema_context(schema):
        ArticlePage.objects.filter(slug=slug).update(title=title)


@pytest.fixture
def publish(django_capture_on_commit_callbacks):
    """Publish a new title the way an editor does; purges run on commit."""

    def run(schema: str, slug: str, title: str) -> None:
        with schema_context(schema), django_capture_on_commit_callbacks(execute=True):
            page = ArticlePage.objects.get(slug=slug)
            page.title = title
            page.save_revision().publish()

    return run


@pytest.fixture
def editor_client(db) -> Client:
    client = Client(HTTP_HOST=ACME_HOST)
    login = client.post(
        "/admin/login/", {"username": "editor", "password": "acme-editor-demo"}
    )
    assert login.status_code == 302
    return client


def test_second_anonymous_read_is_a_hit_without_queries(
    acme_client, django_assert_num_queries, redis_commands
):
    first = acme_client.get(ARTICLE)
    _retitle_behind_the_cache("acme", "acme-launches-the-mark-iv", "Changed")
    redis_commands.clear()

    with django_assert_num_queries(0):
        second = acme_client.get(ARTICLE)

    assert first.status_code == second.status_code == 200
    assert first["X-Page-Cache"] == "miss"
    assert second["X-Page-Cache"] == "hit"
    assert second.content == first.content
    assert OLD_TITLE in second.content.decode()
    assert second["Content-Type"] == first["Content-Type"]
    assert "Cookie" in second["Vary"]
    # One script decides (slot, rate count, lookup) and meters the hit; the host map
    # may check its generation as well.
    assert [c for c in redis_commands if c != "GET"] == ["EVALSHA"], redis_commands


def test_a_new_connections_handshake_is_not_a_round_trip_of_the_hit(
    acme_client, redis_commands
):
    """A fresh connection's handshake (HELLO, CLIENT SETINFO, SELECT) is sent by the
    connection itself, not by the request: it is neither counted nor gated by the
    Redis breaker as a caller's command (so a half-open probe is the caller's own)."""
    from tenants.redis_store.keys import cache_redis, state_redis

    acme_client.get(ARTICLE)
    for client in (state_redis(), cache_redis()):
        client.connection_pool.disconnect()
    redis_commands.clear()

    hit = acme_client.get(ARTICLE)

    assert hit["X-Page-Cache"] == "hit"
    assert [c for c in redis_commands if c != "GET"] == ["EVALSHA"], redis_commands


def test_cached_hits_count_against_the_plan_and_carry_its_headers(acme_client):
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=3")

    responses = [acme_client.get("/") for _ in range(4)]

    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert responses[2]["X-Page-Cache"] == "hit"
    assert responses[2]["RateLimit"].startswith('"public-reads-per-minute";r=0;')
    assert responses[1]["RateLimit"].startswith('"public-reads-per-minute";r=1;')


def test_cached_hits_respect_the_concurrency_cap(acme_client):
    assert acme_client.get("/").status_code == 200
    call_command("plans", "update", "pro", "--limit", "concurrent_requests=1")
    assert acquire_slot("acme", 1)

    assert acme_client.get("/").status_code == 503


def test_publish_purges_that_tenant_only(acme_client, globex_client, publish):
    acme_client.get(ARTICLE)
    globex_home = globex_client.get("/")

    publish("acme", "acme-launches-the-mark-iv", "Acme launches the Mark V")

    acme_after = acme_client.get(ARTICLE)
    globex_after = globex_client.get("/")
    assert "Acme launches the Mark V" in acme_after.content.decode()
    assert globex_after["X-Page-Cache"] == "hit"
    assert globex_after.content == globex_home.content


def test_every_page_of_the_tenant_is_purged_on_publish(acme_client, publish):
    acme_client.get("/")

    publish("acme", "acme-launches-the-mark-iv", "Acme launches the Mark V")

    assert "Acme launches the Mark V" in acme_client.get("/").content.decode()


def test_unpublish_purges(acme_client, django_capture_on_commit_callbacks):
    assert OLD_TITLE in acme_client.get("/").content.decode()
    assert acme_client.get(ARTICLE).status_code == 200

    with schema_context("acme"), django_capture_on_commit_callbacks(execute=True):
        ArticlePage.objects.get(slug="acme-launches-the-mark-iv").unpublish()

    assert OLD_TITLE not in acme_client.get("/").content.decode()
    assert acme_client.get(ARTICLE).status_code == 404


def test_move_purges(acme_client, django_capture_on_commit_callbacks):
    acme_client.get("/")
    _retitle_behind_the_cache("acme", "acme-launches-the-mark-iv", "Moved title")
    assert "Moved title" not in acme_client.get("/").content.decode()

    with schema_context("acme"), django_capture_on_commit_callbacks(execute=True):
        page = ArticlePage.objects.get(slug="acme-launches-the-mark-iv")
        sibling = ArticlePage.objects.get(slug="safety-first-at-acme")
        page.move(sibling, pos="right")

    assert "Moved title" in acme_client.get("/").content.decode()


def test_delete_purges(acme_client, django_capture_on_commit_callbacks):
    assert OLD_TITLE in acme_client.get("/").content.decode()

    with schema_context("acme"), django_capture_on_commit_callbacks(execute=True):
        ArticlePage.objects.get(slug="acme-launches-the-mark-iv").delete()

    assert OLD_TITLE not in acme_client.get("/").content.decode()


def test_logged_in_editor_never_gets_a_cached_page(acme_client, editor_client):
    acme_client.get(ARTICLE)
    _retitle_behind_the_cache("acme", "acme-launches-the-mark-iv", "Draft view")

    editor_view = editor_client.get(ARTICLE)

    assert "Draft view" in editor_view.content.decode()
    assert "X-Page-Cache" not in editor_view
    assert "Draft view" not in acme_client.get(ARTICLE).content.decode()


def test_editor_pages_are_never_stored_for_visitors(acme_client, editor_client):
    editor_client.get("/")
    _retitle_behind_the_cache("acme", "acme-launches-the-mark-iv", "Fresh title")

    visitor_view = acme_client.get("/")

    assert "Fresh title" in visitor_view.content.decode()


def test_two_tenants_with_the_same_path_never_share_an_entry(
    acme_client, globex_client
):
    acme_client.get("/")
    globex_client.get("/")

    acme = acme_client.get("/")
    globex = globex_client.get("/")

    assert acme["X-Page-Cache"] == globex["X-Page-Cache"] == "hit"
    assert "Acme Rockets" in acme.content.decode()
    assert "Acme Rockets" not in globex.content.decode()
    assert "Globex Corporation" in globex.content.decode()


def test_host_and_allowed_query_parameters_are_part_of_the_key(acme_client, settings):
    settings.CMS_PAGE_CACHE_QUERY_PARAMS = ["page"]
    acme_client.get("/")
    _retitle_behind_the_cache("acme", "acme-launches-the-mark-iv", "Other key")

    with_query = acme_client.get("/?page=2")
    with_port = acme_client.get("/", HTTP_HOST=f"{ACME_HOST}:8000")

    assert "Other key" in with_query.content.decode()
    assert "Other key" in with_port.content.decode()


@pytest.mark.parametrize(
    "query", ["?b=81723", "?utm_source=news&utm_medium=mail", "?page=2", "?x"]
)
def test_query_strings_that_do_not_change_the_page_share_its_entry(acme_client, query):
    """A cache-buster (or a tracking parameter) is served from the cache: a flood of
    made-up query strings cannot make every request render."""
    acme_client.get("/")
    _retitle_behind_the_cache("acme", "acme-launches-the-mark-iv", "Stale on purpose")

    response = acme_client.get("/" + query)

    assert response["X-Page-Cache"] == "hit"
    assert "Stale on purpose" not in response.content.decode()


def test_not_found_and_posts_are_not_cached(acme_client):
    assert acme_client.get("/no-such-page/").status_code == 404
    assert "X-Page-Cache" not in acme_client.get("/no-such-page/")
    assert "X-Page-Cache" not in acme_client.post("/", {})


def test_cache_can_be_turned_off(acme_client, settings):
    settings.CMS_PAGE_CACHE_SECONDS = 0
    acme_client.get("/")
    _retitle_behind_the_cache("acme", "acme-launches-the-mark-iv", "Uncached")

    response = acme_client.get("/")

    assert "Uncached" in response.content.decode()
    assert "X-Page-Cache" not in response


def _clear_of_the_rate_windows_end(margin: float = 5.0) -> None:
    """Counts that must add up in one fixed window: start them in a fresh one when
    the current window ends within ``margin`` seconds."""
    request = RequestFactory().get("/", HTTP_HOST=ACME_HOST)
    request.tenant = resolve_tenant(ACME_HOST)
    with schema_context("acme"):
        counter = rate_counter(request, "public_reads_per_minute")
    left = counter.window_end - time.time()
    if left < margin:
        time.sleep(max(0.0, left) + 0.2)


def test_hot_path_counts_on_django_ratelimits_own_counter(acme_client):
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=3")
    _clear_of_the_rate_windows_end()
    assert acme_client.get("/")["X-Page-Cache"] == "miss"
    assert acme_client.get("/")["X-Page-Cache"] == "hit"

    request = RequestFactory().get("/", HTTP_HOST=ACME_HOST)
    request.tenant = resolve_tenant(ACME_HOST)
    with schema_context("acme"):
        usage = get_usage(
            request,
            group="public_reads_per_minute",
            key=rate_key,
            rate=plan_rate("public_reads_per_minute"),
        )
    # a POST is counted by django-ratelimit's get_usage in the view's decorator
    post = acme_client.post("/", {})

    assert usage["count"] == 2
    assert post.status_code == 200
    assert post["RateLimit"].startswith('"public-reads-per-minute";r=0;')
    assert acme_client.get("/").status_code == 429


def test_slot_is_released_after_hits_misses_and_refusals(acme_client):
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=2")
    _clear_of_the_rate_windows_end()

    statuses = [acme_client.get("/").status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    assert in_flight("acme") == 0


def test_pages_are_served_and_metered_after_redis_forgot_its_scripts(acme_client):
    acme_client.get("/")  # both scripts (decision, metering) loaded once
    get_redis_connection("state").script_flush()

    assert acme_client.get("/?page=2").status_code == 200  # decided and metered
    assert acme_client.get("/?page=2").status_code == 200  # a hit, metered in Lua
    assert in_flight("acme") == 0
    flush.flush_usage()
    assert UsageDay.objects.get(tenant__schema_name="acme").public_reads == 3


def test_without_the_hot_path_the_regular_limits_apply(acme_client, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("hot path down")

    monkeypatch.setattr("tenants.request_path.decision.rate_counter", broken)
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=1")

    first, second = acme_client.get("/"), acme_client.get("/")

    assert first.status_code == 200
    assert first["RateLimit"].startswith('"public-reads-per-minute";r=0;')
    assert second.status_code == 429
    assert in_flight("acme") == 0


def test_a_page_that_raises_still_releases_its_slot(monkeypatch):
    def exploding(request, path):
        raise RuntimeError("template blew up")

    monkeypatch.setattr("wagtail.views.Page.route_for_request", exploding)
    client = Client(HTTP_HOST=ACME_HOST, raise_request_exception=False)

    response = client.get("/acme-launches-the-mark-iv/")

    assert response.status_code == 500
    assert in_flight("acme") == 0


def _visitor(address: str) -> Client:
    return Client(HTTP_HOST=ACME_HOST, REMOTE_ADDR=address)


@pytest.mark.parametrize("cached", [True, False])
def test_one_client_over_its_share_leaves_other_visitors_served(db, settings, cached):
    """One client flooding a site (cached pages, or uncached ones) is refused at its
    own share; the tenant's allowance is not used up, so another client still reads."""
    settings.CMS_PAGE_CACHE_SECONDS = 300 if cached else 0
    call_command(
        "plans",
        "update",
        "pro",
        "--limit",
        "public_reads_per_minute=6",
        "--limit",
        "public_reads_per_client_per_minute=3",
    )
    flooder, reader = _visitor("203.0.113.7"), _visitor("198.51.100.20")
    clear_of_window_edges("acme", "client:203.0.113.7", "client:198.51.100.20")

    statuses = [flooder.get("/").status_code for _ in range(10)]

    assert statuses == [200] * 3 + [429] * 7
    refused = flooder.get("/")
    assert '"public-reads-per-client-per-minute";q=3' in refused["RateLimit-Policy"]
    assert [reader.get("/").status_code for _ in range(3)] == [200, 200, 200]


def test_the_client_share_holds_behind_a_trusted_proxy(db, settings):
    settings.CMS_TRUSTED_PROXIES = ["127.0.0.1/32"]
    call_command(
        "plans", "update", "pro", "--limit", "public_reads_per_client_per_minute=2"
    )

    def via_proxy(client_address: str) -> int:
        return (
            Client(
                HTTP_HOST=ACME_HOST,
                REMOTE_ADDR="127.0.0.1",
                HTTP_X_FORWARDED_FOR=client_address,
            )
            .get("/")
            .status_code
        )

    clear_of_window_edges("acme", "client:203.0.113.7", "client:198.51.100.20")
    assert [via_proxy("203.0.113.7") for _ in range(3)] == [200, 200, 429]
    assert via_proxy("198.51.100.20") == 200


def test_search_counts_the_client_share_too(db):
    """Views outside the one-round-trip decision (search) count the same share through
    the rate-limit decorator."""
    call_command(
        "plans", "update", "pro", "--limit", "public_reads_per_client_per_minute=2"
    )
    flooder, reader = _visitor("203.0.113.7"), _visitor("198.51.100.20")
    clear_of_window_edges("acme", "client:203.0.113.7", "client:198.51.100.20")

    statuses = [flooder.get("/search/", {"q": f"x{n}"}).status_code for n in range(3)]

    assert statuses == [200, 200, 429]
    assert reader.get("/search/", {"q": "rocket"}).status_code == 200
