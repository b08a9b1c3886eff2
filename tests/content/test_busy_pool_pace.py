"""A busy pool's pace, through the WSGI application gunicorn serves: a public page to
render beyond the plan's pace (its public reads per minute spread evenly, a burst of
``CMS_BUSY_POOL_BURST_SECONDS``) runs while the pool has a database slot free, and
gives way at once - 503, Retry-After 1, before Django - while the pool is busy."""

import pytest
from django.core.management import call_command
from django.test import RequestFactory
from prometheus_client import REGISTRY

from tenants.metering import flush
from tenants.models import Tenant, UsageDay
from tenants.redis_store.keys import state_redis
from tenants.request_path.decision import Outcome, decide_page_request
from tenants.request_path.edge import PageCacheEdge
from tenants.resilience import worker_reserve
from tenants.tariffs.admission import in_flight, pace_key
from tests.wsgi_app import ARTICLE, wsgi

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("wsgi_app")]


@pytest.fixture
def one_slot_pool(settings, tmp_path):
    """A pool of one database slot, which a render beyond the pace may take (it
    leaves none free for others), every request a render (page cache off), and
    acme's plan at one public read a second: its pace lets two renders through at
    once (the burst of one second), the third is beyond it."""
    settings.CMS_PAGE_CACHE_SECONDS = 0
    settings.CMS_DB_SLOTS = 1
    settings.CMS_DB_SLOTS_DIR = str(tmp_path)
    settings.CMS_DB_SLOT_WAIT_SECONDS = 0.05
    settings.CMS_BUSY_POOL_BURST_SECONDS = 1
    settings.CMS_BUSY_POOL_FREE_SLOTS = 0
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=60")


def test_renders_beyond_the_plans_pace_run_while_the_pool_has_room(
    one_slot_pool, django_runs
):
    answers = [wsgi(ARTICLE) for _ in range(4)]

    # the last two are beyond the pace, but a slot was free: unused capacity is
    # never refused
    assert [answer.status for answer in answers] == [200] * 4
    assert len(django_runs) == 4
    assert worker_reserve.slots_in_use() == 0  # the edge's slot was handed on and freed
    assert in_flight("acme") == 0


# A session cookie keeps a page out of the cache, not out of the pace: a made-up one
# must not let a flood step around it (nor does a signed-in editor's).
@pytest.mark.parametrize("cookie", [{}, {"HTTP_COOKIE": "cms_session=made-up"}])
def test_a_render_beyond_the_pace_gives_way_at_once_while_the_pool_is_busy(
    one_slot_pool, django_runs, settings, labelled_tenants, cookie, slot_waits
):
    # within the pace
    assert [wsgi(ARTICLE, **cookie).status for _ in range(2)] == [200, 200]
    settings.CMS_DB_SLOT_WAIT_SECONDS = 5  # what a request within the pace would wait
    labels = {"tenant": "acme", "status": "503", "limit": "busy_pool"}
    before = REGISTRY.get_sample_value("cms_rejections_total", labels) or 0.0
    held = worker_reserve.take_slot()
    assert held not in (None, False)
    try:
        refused = wsgi(ARTICLE, **cookie)
    finally:
        worker_reserve.release_slot(held)

    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    assert "X-Request-ID" in refused.headers
    assert b"as many visitors as it can at once" in refused.body
    assert len(django_runs) == 2  # the refusal never reached Django
    assert slot_waits == []  # nor waited for a slot
    # in the metrics by the limit that refused it
    assert REGISTRY.get_sample_value("cms_rejections_total", labels) == before + 1
    assert in_flight("acme") == 0  # its concurrency slot was released
    assert worker_reserve.slots_in_use() == 0
    flush.flush_usage()
    day = UsageDay.objects.get(tenant__schema_name="acme")
    assert (day.public_reads, day.rejected_503) == (2, 1)
    # the pool free again, the same tenant beyond its pace is served
    assert wsgi(ARTICLE, **cookie).status == 200


@pytest.mark.parametrize(
    ("left_free", "held_by_others", "status"),
    [(1, 1, 200), (1, 2, 503), (0, 2, 200), (0, 3, 503), (2, 0, 200), (2, 1, 503)],
)
def test_a_render_beyond_the_pace_leaves_slots_free_for_the_next_requests(
    one_slot_pool, settings, left_free, held_by_others, status
):
    """Requests within their pace wait for a slot instead of giving way, a backlog
    the slots do not show: so one beyond the pace runs only while
    ``CMS_BUSY_POOL_FREE_SLOTS`` more stay free after it (of three slots here)."""
    settings.CMS_DB_SLOTS = 3
    settings.CMS_BUSY_POOL_FREE_SLOTS = left_free
    assert [wsgi(ARTICLE).status for _ in range(2)] == [200, 200]  # within the pace
    held = [worker_reserve.take_slot() for _ in range(held_by_others)]
    try:
        answer = wsgi(ARTICLE)
    finally:
        for descriptor in held:
            worker_reserve.release_slot(descriptor)

    assert answer.status == status
    assert worker_reserve.slots_in_use() == 0  # the slots it counted were let go
    assert in_flight("acme") == 0


def test_a_tenant_within_its_pace_waits_for_a_busy_pool_instead(
    one_slot_pool, django_runs
):
    held = worker_reserve.take_slot()
    try:
        waited = wsgi(ARTICLE)  # the first render is within the pace
    finally:
        worker_reserve.release_slot(held)

    # it went on to Django, which waited CMS_DB_SLOT_WAIT_SECONDS for a slot
    assert len(django_runs) == 1
    assert waited.status == 503


def test_a_slot_the_edge_took_is_released_when_django_never_claims_it(one_slot_pool):
    """A render beyond the pace takes its database slot at the edge; if Django
    answers before the dependency guard claims it, the edge releases it (and the
    tenant's concurrency slot) after the answer."""
    assert [wsgi(ARTICLE).status for _ in range(2)] == [200, 200]  # within the pace
    held_meanwhile = []

    def answers_before_the_guard(environ, start_response):
        held_meanwhile.append(worker_reserve.slots_in_use())
        start_response("204 No Content", [])
        return [b""]

    answer = wsgi(ARTICLE, app=PageCacheEdge(answers_before_the_guard))

    assert answer.status == 204
    assert held_meanwhile == [1]  # the edge had taken the slot for it
    assert worker_reserve.slots_in_use() == 0
    assert in_flight("acme") == 0


def _beyond(count: int) -> list[bool]:
    """Whether each of ``count`` renders of acme in a row is beyond its pace."""
    tenant = Tenant.objects.select_related("plan").get(schema_name="acme")
    factory = RequestFactory(HTTP_HOST="acme.localhost")
    flags = []
    for _ in range(count):
        request = factory.get(ARTICLE)
        request.tenant = tenant
        decision = decide_page_request(request, tenant)
        assert decision.outcome is Outcome.RENDER
        pipe = state_redis().pipeline()
        decision.release(pipe)
        pipe.execute()
        flags.append(decision.beyond_pace)
    return flags


def test_the_pace_is_the_plans_reads_per_minute_with_a_burst(settings):
    settings.CMS_PAGE_CACHE_SECONDS = 0
    settings.CMS_BUSY_POOL_BURST_SECONDS = 1
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=60")
    assert _beyond(4) == [False, False, True, True]

    # a larger plan, a larger burst: 120 a minute is 2 a second, 3 at once
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=120")
    state_redis().delete(pace_key("acme"))
    assert _beyond(4) == [False, False, False, True]


def test_a_burst_of_zero_turns_the_pace_off(settings):
    settings.CMS_PAGE_CACHE_SECONDS = 0
    settings.CMS_BUSY_POOL_BURST_SECONDS = 0
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=60")
    assert _beyond(4) == [False] * 4
