"""Pages a worker answers again from its own memory (tenants.request_path.local_hits),
through the WSGI application gunicorn serves: the same answer as the decision's, the
same counts and limits, and never a page a purge has replaced."""

import logging
import os
import re
import time

import pytest
from django.core.management import call_command

from tenants.metering import flush
from tenants.models import UsageDay
from tenants.redis_store.keys import cache_redis
from tenants.request_path import edge, page_cache
from tenants.request_path.local_hits import SEND_SECONDS, local_hits
from tests.wsgi_app import ARTICLE, gunicorn_conf, wsgi

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("wsgi_app")]


@pytest.fixture
def decisions(monkeypatch):
    """How many requests were decided in Redis (the rest came from memory)."""
    made = []
    decide = edge.decide_page_request

    def counted(*args, **kwargs):
        made.append(1)
        return decide(*args, **kwargs)

    monkeypatch.setattr(edge, "decide_page_request", counted)
    return made


@pytest.fixture
def roomy_plan():
    """Limits far from reach: a worker may answer from memory."""
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=100000")
    call_command(
        "plans", "update", "pro", "--limit", "public_reads_per_client_per_minute=100000"
    )


def _remaining(answer) -> int:
    return int(re.search(r";r=(\d+)", answer.headers["RateLimit"]).group(1))


def test_a_page_answered_from_memory_is_the_decisions_answer(roomy_plan, decisions):
    miss, hit = wsgi(ARTICLE), wsgi(ARTICLE)
    assert len(decisions) == 2

    remembered = wsgi(ARTICLE, HTTP_X_REQUEST_ID="from-memory-1")
    head = wsgi(ARTICLE, method="HEAD")

    assert len(decisions) == 2  # neither was decided in Redis
    assert (miss.headers["X-Page-Cache"], remembered.headers["X-Page-Cache"]) == (
        "miss",
        "hit",
    )
    assert remembered.status == 200
    assert remembered.body == hit.body == miss.body
    assert remembered.headers["X-Request-ID"] == "from-memory-1"
    assert list(remembered.headers) == list(hit.headers)
    for name, value in hit.headers.items():
        if name not in ("X-Request-ID", "RateLimit"):
            assert remembered.headers[name] == value, name
    assert _remaining(remembered) == _remaining(hit) - 1
    assert _remaining(head) == _remaining(hit) - 2
    assert head.body == b""


def test_an_answer_from_memory_leaves_the_same_access_event_and_metrics(
    roomy_plan, decisions, caplog, labelled_tenants
):
    from prometheus_client import REGISTRY

    caplog.set_level(logging.INFO, logger="cms.access")
    client = {"REMOTE_ADDR": "198.51.100.7"}  # its own allowance per client
    wsgi(ARTICLE, **client), wsgi(ARTICLE, HTTP_X_REQUEST_ID="decided", **client)
    series = {"tenant": "acme", "status_class": "2xx"}
    before = REGISTRY.get_sample_value("cms_requests_total", series) or 0

    wsgi(ARTICLE, HTTP_X_REQUEST_ID="remembered", **client)

    assert len(decisions) == 2
    events = {r.request_id: r for r in caplog.records if r.name == "cms.access"}
    decided, remembered = events["decided"], events["remembered"]
    for field in ("tenant", "method", "path", "status", "user_id", "event"):
        assert getattr(remembered, field) == getattr(decided, field), field
    assert remembered.client_ip == "198.51.100.7"
    assert remembered.duration_ms >= 0
    assert REGISTRY.get_sample_value("cms_requests_total", series) == before + 1


def test_other_queries_and_cookies_are_decided_in_redis(roomy_plan, decisions):
    wsgi(ARTICLE), wsgi(ARTICLE)

    wsgi(ARTICLE, QUERY_STRING="utm_source=x")
    wsgi(ARTICLE, HTTP_COOKIE="theme=dark")
    wsgi(ARTICLE, HTTP_HOST="acme.localhost:8000")

    assert len(decisions) == 5


def test_answers_from_memory_are_counted_and_metered_like_decided_ones(roomy_plan):
    answers = [wsgi(ARTICLE) for _ in range(50)]

    assert {a.status for a in answers} == {200}
    assert _remaining(answers[-1]) == 100000 - 50
    flush.flush_usage()  # sends what this process holds back first
    day = UsageDay.objects.get(tenant__schema_name="acme")
    assert day.public_reads == 50
    # and the plan's counter in Redis has every one of them: a new worker's
    # decision says so
    local_hits.forget()
    assert _remaining(wsgi(ARTICLE)) == 100000 - 51


def test_one_worker_never_lets_more_than_the_plans_limit_through(decisions):
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=300")
    call_command(
        "plans", "update", "pro", "--limit", "public_reads_per_client_per_minute=1000"
    )

    statuses = [wsgi(ARTICLE).status for _ in range(320)]

    assert statuses.count(200) == 300
    assert statuses[300:] == [429] * 20
    assert len(decisions) < 300  # some were answered from memory


def test_a_purge_announced_by_another_process_is_heard_before_the_next_answer(
    roomy_plan, decisions
):
    wsgi(ARTICLE), wsgi(ARTICLE)
    assert wsgi(ARTICLE).headers["X-Page-Cache"] == "hit"  # from memory
    before = len(decisions)

    page_cache.purge_tenant_pages("acme")
    page_cache.forget_generations()  # as if another worker had purged: only the
    # channel tells this one

    after = wsgi(ARTICLE)
    assert after.headers["X-Page-Cache"] == "miss"
    assert len(decisions) == before + 1


def test_a_lost_channel_sends_every_request_to_redis(roomy_plan, decisions):
    wsgi(ARTICLE), wsgi(ARTICLE)
    before = len(decisions)

    cache_redis().client_kill_filter(_type="pubsub")  # Redis restarted, say

    assert wsgi(ARTICLE).headers["X-Page-Cache"] == "hit"  # from the cache, decided
    assert len(decisions) == before + 1


def test_a_subscription_redis_py_renewed_on_its_own_counts_as_lost(
    roomy_plan, decisions
):
    wsgi(ARTICLE), wsgi(ARTICLE)
    before = len(decisions)
    cache_redis().client_kill_filter(_type="pubsub")
    # redis-py notices on its next read, connects and subscribes again by itself:
    # what was announced in between is lost
    local_hits._channel._pubsub.get_message(timeout=0.5)

    assert wsgi(ARTICLE).headers["X-Page-Cache"] == "hit"
    assert len(decisions) == before + 1


def test_dropping_a_tenants_cache_keys_drops_the_pages_workers_keep(
    roomy_plan, decisions
):
    from tenants.provisioning.creation import purge_tenant_cache

    wsgi(ARTICLE), wsgi(ARTICLE)
    before = len(decisions)

    purge_tenant_cache("acme")  # after a restore, a move or a deletion
    page_cache.forget_generations()  # as if another process had dropped them

    assert wsgi(ARTICLE).headers["X-Page-Cache"] == "miss"
    assert len(decisions) == before + 1


def test_a_worker_going_away_sends_the_counts_it_holds_back(roomy_plan):
    """gunicorn's ``worker_exit`` (cms_project/gunicorn.conf.py) sends what the
    worker answered from memory and has not sent yet: a recycled or stopped worker
    loses no count to the 0.25 s between its sender's rounds."""
    conf = gunicorn_conf()
    # this process's sender thread stops after its round; none starts while the pid
    # is this one: from here on only the hook sends
    local_hits._sender_pid = -1
    time.sleep(2 * SEND_SECONDS)
    local_hits._sender_pid = os.getpid()
    try:
        answers = [wsgi(ARTICLE) for _ in range(50)]
        assert {a.status for a in answers} == {200}

        conf["worker_exit"](None, None)

        # a new worker's decision counts all 50 against the plan (the allowance a
        # worker keeps would otherwise be short by what was held back)
        local_hits.forget()
        assert _remaining(wsgi(ARTICLE)) == 100000 - 51
    finally:
        local_hits._sender_pid = 0  # the next answer from memory starts a sender
