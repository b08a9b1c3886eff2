"""Per-tenant Prometheus metrics: access control, what is counted, label bounds."""

import pytest
from django.core.management import call_command
from django.test import Client, RequestFactory, override_settings
from prometheus_client import REGISTRY

from tenants.metering import counters, flush
from tenants.observability import metrics
from tests.conftest import all_slots_taken

TOKEN = "scrape-secret"


# acme and globex are the busiest tenants unless a test says otherwise.
pytestmark = pytest.mark.usefixtures("db", "labelled_tenants")


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _scrape(**extra) -> tuple[int, str]:
    response = Client(HTTP_HOST="localhost").get("/metrics", **extra)
    return response.status_code, response.content.decode()


def test_metrics_do_not_exist_without_a_token_or_allow_list():
    with override_settings(CMS_METRICS_TOKEN="", CMS_METRICS_ALLOW_IPS=[]):
        status, _ = _scrape(HTTP_AUTHORIZATION="Bearer anything")
    assert status == 404


@override_settings(CMS_METRICS_TOKEN=TOKEN)
def test_scrape_needs_the_bearer_token():
    assert _scrape()[0] == 401
    assert _scrape(HTTP_AUTHORIZATION="Bearer wrong")[0] == 401
    assert _scrape(HTTP_AUTHORIZATION=f"Basic {TOKEN}")[0] == 401
    status, body = _scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert status == 200
    assert "cms_requests_total" in body


@override_settings(CMS_METRICS_TOKEN="", CMS_METRICS_ALLOW_IPS=["10.0.0.0/8"])
def test_allow_list_refuses_other_addresses():
    assert _scrape()[0] == 403  # the test client comes from 127.0.0.1
    assert _scrape(REMOTE_ADDR="10.1.2.3")[0] == 200


@override_settings(CMS_METRICS_TOKEN=TOKEN)
def test_metrics_are_only_on_the_public_host(acme_client):
    response = acme_client.get(
        "/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", follow=True
    )
    assert response.status_code == 404
    assert b"cms_requests_total" not in response.content


def test_requests_and_latency_are_counted_per_tenant_and_status_class(
    acme_client, globex_client
):
    before = {
        "acme": _value("cms_requests_total", tenant="acme", status_class="2xx"),
        "globex": _value("cms_requests_total", tenant="globex", status_class="2xx"),
        "acme_404": _value("cms_requests_total", tenant="acme", status_class="4xx"),
        "latency": _value("cms_request_duration_seconds_count", tenant="acme"),
    }

    for _ in range(3):
        acme_client.get("/")
    globex_client.get("/")
    acme_client.get("/no-such-page/")

    assert _value("cms_requests_total", tenant="acme", status_class="2xx") == (
        before["acme"] + 3
    )
    assert _value("cms_requests_total", tenant="globex", status_class="2xx") == (
        before["globex"] + 1
    )
    assert _value("cms_requests_total", tenant="acme", status_class="4xx") == (
        before["acme_404"] + 1
    )
    assert _value("cms_request_duration_seconds_count", tenant="acme") == (
        before["latency"] + 4
    )


def test_429_and_503_are_counted_by_tenant_and_limit(acme_client):
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=1")
    limited = {"tenant": "acme", "status": "429", "limit": "public_reads_per_minute"}
    busy = {"tenant": "acme", "status": "503", "limit": "concurrent_requests"}
    before_429, before_503 = (
        _value("cms_rejections_total", **limited),
        _value("cms_rejections_total", **busy),
    )

    assert acme_client.get("/").status_code == 200
    assert acme_client.get("/").status_code == 429
    with all_slots_taken("acme"):
        assert acme_client.get("/").status_code == 503

    assert _value("cms_rejections_total", **limited) == before_429 + 1
    assert _value("cms_rejections_total", **busy) == before_503 + 1


def test_in_flight_gauge_counts_a_running_request(acme_client, monkeypatch):
    seen = []

    def slot(schema_name, cap):
        seen.append(_value("cms_requests_in_flight", tenant="acme"))
        return "token"

    monkeypatch.setattr("tenants.request_path.middleware.acquire_slot", slot)
    monkeypatch.setattr(
        "tenants.request_path.middleware.release_slot", lambda *args: None
    )
    idle = _value("cms_requests_in_flight", tenant="acme")

    acme_client.get("/search/", {"q": "rockets"})

    assert seen == [idle + 1]
    assert _value("cms_requests_in_flight", tenant="acme") == idle


def _traffic(schemas_and_counts: dict[str, int]) -> None:
    """Put requests into the shared traffic window, as the middleware does."""
    request = RequestFactory().get("/")
    client = counters.state_redis()
    pipe = client.pipeline(transaction=False)
    key = counters.window_key("req", counters.window_bucket())
    for schema, count in schemas_and_counts.items():
        pipe.zincrby(key, count, schema)
    pipe.expire(key, 120)
    pipe.execute()
    busiest = counters.record_request(
        schema="acme",
        request=request,
        status=200,
        seconds=0.01,
        refresh_labels=metrics.top_tenants(),
    )
    metrics.tenant_labels.update(busiest)


@override_settings(CMS_METRICS_TOP_TENANTS=2)
def test_only_the_busiest_tenants_get_a_label_the_rest_are_other():
    _traffic({"t-busy": 500, "t-second": 300, "t-quiet": 5, "t-idle": 1})

    assert metrics.tenant_labels.labelled() == {"t-busy", "t-second"}
    assert metrics.tenant_labels.label("t-busy") == "t-busy"
    assert metrics.tenant_labels.label("t-quiet") == "other"
    assert metrics.tenant_labels.label("acme") == "other"
    assert metrics.tenant_labels.label("public") == "public"
    assert metrics.tenant_labels.label("unknown") == "unknown"


def test_labels_stay_bounded_at_ten_thousand_tenants():
    traffic = {f"tenant-{n:05d}": n % 997 + 1 for n in range(10_000)}
    _traffic(traffic)
    other_before = _value("cms_requests_total", tenant="other", status_class="2xx")
    for schema in traffic:
        metrics.record_request(tenant=schema, status=200, seconds=0.01, rejection=None)

    labels = {
        sample.labels["tenant"]
        for family in REGISTRY.collect()
        if family.name == "cms_requests"
        for sample in family.samples
    }
    own_labels = {label for label in labels if label.startswith("tenant-")}
    assert len(own_labels) == metrics.top_tenants() == 50
    assert own_labels == metrics.tenant_labels.labelled()
    assert _value("cms_requests_total", tenant="other", status_class="2xx") == (
        other_before + 10_000 - 50
    )


@override_settings(CMS_METRICS_TOKEN=TOKEN)
def test_queue_depth_is_reported_per_tenant(monkeypatch):
    monkeypatch.setattr(
        metrics, "queue_depths", lambda: {"acme": 4, "zeta": 2, "omega": 1}
    )

    status, body = _scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert status == 200
    assert 'cms_queue_depth{tenant="acme"} 4.0' in body
    assert 'cms_queue_depth{tenant="other"} 3.0' in body


def test_queue_depth_reads_the_fair_queue(db):
    from tenants.jobs import fair_queue

    fair_queue.clear()
    try:
        fair_queue.push(schema="acme", job_refs=["1", "2", "3"], cap=1)
        assert metrics.queue_depths() == {"acme": 3}
    finally:
        fair_queue.clear()


def _publish_jobs_metered(schema: str) -> int:
    from django.db.models import Sum

    from tenants.models import UsageDay

    flush.flush_usage()
    rows = UsageDay.objects.filter(tenant__schema_name=schema)
    return rows.aggregate(total=Sum("publish_jobs"))["total"] or 0


def test_a_job_is_metered_where_it_runs_by_tenant_and_outcome():
    """The runner counts each finished job (usage and metrics) for the job's tenant;
    no Celery signal is involved."""
    from django_tenants.utils import schema_context

    from content.jobs import run_claimed_job
    from content.models import BackgroundJob

    with schema_context("acme"):
        done = BackgroundJob.objects.create(kind="test.noop")
        failed = BackgroundJob.objects.create(kind="test.broken")
    before_done = _value("cms_publish_jobs_total", tenant="acme", outcome="done")
    before_failed = _value("cms_publish_jobs_total", tenant="acme", outcome="failed")
    before_usage = _publish_jobs_metered("acme")

    assert run_claimed_job(schema="acme", job_id=done.pk, attempt=1).status == "done"
    outcome = run_claimed_job(schema="acme", job_id=failed.pk, attempt=1)

    assert outcome.status == "failed"
    assert _value("cms_publish_jobs_total", tenant="acme", outcome="done") == (
        before_done + 1
    )
    assert _value("cms_publish_jobs_total", tenant="acme", outcome="failed") == (
        before_failed + 1
    )
    assert _publish_jobs_metered("acme") == before_usage + 2
