"""The hot path's price: observing a request adds exactly one Redis round trip (a
pipeline) for a tenant's request, none for the operator's host, and no query."""

import pytest

from tenants.metering import counters, flush
from tenants.models import UsageDay
from tenants.observability import metrics


class CountingRedis:
    """Wraps the real client; counts round trips (commands and pipeline runs)."""

    def __init__(self, client):
        self.client = client
        self.round_trips = 0

    def pipeline(self, *args, **kwargs):
        pipe = self.client.pipeline(*args, **kwargs)
        real_execute = pipe.execute

        def execute(*a, **kw):
            self.round_trips += 1
            return real_execute(*a, **kw)

        pipe.execute = execute
        return pipe

    def __getattr__(self, name):
        attribute = getattr(self.client, name)
        if callable(attribute):

            def command(*args, **kwargs):
                self.round_trips += 1
                return attribute(*args, **kwargs)

            return command
        return attribute


@pytest.fixture
def counting(monkeypatch):
    counter = CountingRedis(counters.state_redis())
    monkeypatch.setattr(counters, "state_redis", lambda: counter)
    return counter


@pytest.mark.parametrize("refresh_due", [False, True])
@pytest.mark.usefixtures("labelled_tenants")
def test_a_tenant_request_costs_one_round_trip(acme_client, counting, refresh_due):
    if refresh_due:
        metrics.tenant_labels._refresh_after = 0  # the top list is read as well
    acme_client.get("/search/", {"q": "rockets"})  # warm caches (host map)
    counting.round_trips = 0

    acme_client.get("/search/", {"q": "rockets"})

    assert counting.round_trips == 1


@pytest.mark.parametrize("refresh_due", [False, True])
def test_a_cached_page_is_metered_by_the_script_that_answered_it(
    acme_client, counting, refresh_due, labelled_tenants
):
    acme_client.get("/")  # the page cache now holds the page
    if refresh_due:
        metrics.tenant_labels._refresh_after = 0
    counting.round_trips = 0

    response = acme_client.get("/")
    round_trips = counting.round_trips
    flush.flush_usage()

    assert response["X-Page-Cache"] == "hit"
    # the top list is read in the regular metering round trip when it is due
    assert round_trips == (1 if refresh_due else 0)
    day = UsageDay.objects.get(tenant__schema_name="acme")
    assert day.public_reads == 2


def test_the_operator_host_costs_no_round_trip(db, counting, client):
    client.get("/", HTTP_HOST="localhost")

    assert counting.round_trips == 0


def test_observing_adds_no_query(acme_client, django_assert_num_queries):
    acme_client.get("/")  # warm: the page cache now holds the page
    with django_assert_num_queries(0):
        response = acme_client.get("/")
    assert response["X-Page-Cache"] == "hit"
