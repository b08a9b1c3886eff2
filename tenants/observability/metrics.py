"""Prometheus figures per tenant, correct across every gunicorn and Celery process.

Multiprocess mode: when ``PROMETHEUS_MULTIPROC_DIR`` is set (gunicorn.conf.py sets a
default and cleans it at start; Celery workers on the same host must get the same
directory), every process writes its figures to memory-mapped files there and a scrape
of ``/metrics`` on any worker adds them all up. Without it (``runserver``, tests) the
process's own registry is used.

Cardinality: a label per tenant would grow without bound (10,000 tenants times status
classes times histogram buckets). Only the ``CMS_METRICS_TOP_TENANTS`` busiest tenants
of the last minute (from the shared traffic window in Redis,
``tenants.metering.counters``) get their own ``tenant`` label; all others are added up
under ``tenant="other"``, the operator's host under ``public`` and unknown hosts
under ``unknown``. Every process reads the same top list (refreshed inside the
request's usage pipeline, no extra round trip), so a tenant has one label everywhere
at a time. Per-tenant detail for any tenant, labelled or not, is in the usage
counters (``manage.py tenants top`` / ``usage``) and in the logs.
"""

import functools
import hmac
import ipaddress
import logging
import os
import threading
import time

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

from tenants.jobs.fair_queue import pending_by_tenant
from tenants.request_path.client_address import client_ip

logger = logging.getLogger(__name__)


def queue_depths() -> dict[str, int]:
    """Jobs waiting per tenant, for the queue depth gauge."""
    return pending_by_tenant()


OTHER = "other"
PUBLIC = "public"
UNKNOWN = "unknown"

REQUESTS = Counter(
    "cms_requests",
    "HTTP requests by tenant and status class.",
    ["tenant", "status_class"],
)
LATENCY = Histogram(
    "cms_request_duration_seconds",
    "Time from the first middleware to the response, by tenant.",
    ["tenant"],
    buckets=(0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
REJECTIONS = Counter(
    "cms_rejections",
    "429 and 503 answers by tenant and the limit that gave them.",
    ["tenant", "status", "limit"],
)
IN_FLIGHT = Gauge(
    "cms_requests_in_flight",
    "Requests being served now, by tenant (summed over live processes).",
    ["tenant"],
    multiprocess_mode="livesum",
)
BREAKER_STATE = Gauge(
    "cms_dependency_breaker_state",
    "Circuit breaker of each dependency: 0 closed, 1 half-open, 2 open (the worst "
    "over live processes).",
    ["dependency"],
    multiprocess_mode="livemax",
)
PUBLISH_JOBS = Counter(
    "cms_publish_jobs",
    "Background publish jobs run by Celery workers, by tenant and outcome.",
    ["tenant", "outcome"],
)


class TenantLabels:
    """Which tenants get a label of their own: the shared top-K list, as last read."""

    def __init__(self) -> None:
        self._labelled: frozenset[str] = frozenset()
        self._refresh_after = 0.0
        self._lock = threading.Lock()

    def label(self, tenant: str) -> str:
        if tenant in (PUBLIC, UNKNOWN) or tenant in self._labelled:
            return tenant
        return OTHER

    def refresh_due(self) -> bool:
        return time.monotonic() >= self._refresh_after

    def update(self, tenants: list[str]) -> None:
        with self._lock:
            self._labelled = frozenset(tenants[: top_tenants()])
            self._refresh_after = time.monotonic() + refresh_seconds()

    def labelled(self) -> frozenset[str]:
        return self._labelled


tenant_labels = TenantLabels()


def top_tenants() -> int:
    return int(getattr(settings, "CMS_METRICS_TOP_TENANTS", 50))


def refresh_seconds() -> float:
    return float(getattr(settings, "CMS_METRICS_LABEL_REFRESH_SECONDS", 30))


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def record_request(
    *, tenant: str, status: int, seconds: float, rejection: str | None
) -> None:
    """Count one finished request (in this process's share of the figures)."""
    label = tenant_labels.label(tenant)
    requests, latency = _request_series(label, status)
    requests.inc()
    latency.observe(seconds)
    if status in (429, 503):
        REJECTIONS.labels(label, str(status), rejection or "other").inc()


# The same series ``labels`` returns, looked up once per (label, status) rather than
# on every request (statuses are few, labels bounded by the top-K).
@functools.lru_cache(maxsize=10_000)
def _request_series(label: str, status: int) -> tuple:
    return REQUESTS.labels(label, status_class(status)), LATENCY.labels(label)


def record_breaker_state(*, dependency: str, value: int) -> None:
    BREAKER_STATE.labels(dependency).set(value)


def record_publish_job(*, tenant: str, outcome: str) -> None:
    PUBLISH_JOBS.labels(tenant_labels.label(tenant), outcome).inc()


# --- scrape ---------------------------------------------------------------------------


class QueueDepthCollector:
    """Jobs waiting per tenant, read from Redis at scrape time (the fair queue's
    per-tenant lists; without them, the Celery queue's length as ``other``)."""

    def collect(self):
        family = GaugeMetricFamily(
            "cms_queue_depth", "Background jobs waiting, by tenant.", labels=["tenant"]
        )
        try:
            depths = queue_depths()
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail on Redis
            logger.warning("queue depth unavailable: %s", exc)
            return
        totals: dict[str, int] = {}
        for tenant, depth in depths.items():
            label = tenant_labels.label(tenant)
            totals[label] = totals.get(label, 0) + depth
        for label, depth in sorted(totals.items()):
            family.add_metric([label], depth)
        yield family


def render_metrics() -> bytes:
    depth_registry = CollectorRegistry()
    depth_registry.register(QueueDepthCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    return body + generate_latest(depth_registry)


def _client_allowed(request: HttpRequest) -> bool:
    allowed = getattr(settings, "CMS_METRICS_ALLOW_IPS", [])
    if not allowed:
        return True
    try:
        address = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(network, strict=False) for network in allowed
    )


def _token_valid(request: HttpRequest) -> bool:
    token = getattr(settings, "CMS_METRICS_TOKEN", "")
    if not token:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The scrape endpoint: absent (404) unless a token or an allow-list is set."""
    if not (
        getattr(settings, "CMS_METRICS_TOKEN", "")
        or getattr(settings, "CMS_METRICS_ALLOW_IPS", [])
    ):
        raise Http404("metrics are not enabled")
    if not _client_allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    if not _token_valid(request):
        response = HttpResponse(
            "A valid bearer token is required.\n",
            status=401,
            content_type="text/plain",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)
