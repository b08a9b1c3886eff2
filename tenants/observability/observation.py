"""What every request leaves behind: a request id, one access-log event, metrics and
usage counts, all tagged with its tenant.

``RequestObservationMiddleware`` is the first middleware, so answers given early
(unknown host 404, suspended 503, concurrency 503, rate limit 429) are observed too.
It takes the caller's ``X-Request-ID`` (or makes one), returns it on the response, and
after the response writes the access-log event, the Prometheus figures and the usage
counters. ``TenantContextMiddleware`` sits right after the tenant gate: from there on
log lines carry the tenant, and the tenant's in-flight gauge counts the request.
"""

import logging
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from tenants.adapters.django import is_unevaluated
from tenants.metering import counters
from tenants.observability import log_context, metrics
from tenants.request_path.client_address import client_ip
from tenants.request_state import request_state

access_logger = logging.getLogger("cms.access")
logger = logging.getLogger(__name__)

# Liveness and readiness probes come every few seconds from every balancer: they are
# neither logged nor counted.
UNOBSERVED_PATHS = frozenset({"/healthz", "/readyz"})
PUBLIC_TENANT = "public"
UNKNOWN_TENANT = "unknown"


def tenant_name(request: HttpRequest) -> str:
    """The tenant a request belongs to, as logged: its schema, ``public`` for the
    operator's host, ``unknown`` for a host no tenant owns."""
    if not hasattr(request, "tenant"):
        return UNKNOWN_TENANT
    tenant = request.tenant
    return PUBLIC_TENANT if tenant is None else tenant.schema_name


def user_id(request: HttpRequest) -> str:
    """The user's id if authentication already ran; never loads a session for it."""
    user = getattr(request, "user", None)
    if user is None:
        return "-"
    if is_unevaluated(user):
        return "-"
    return str(user.pk) if user.is_authenticated else "-"


def observed(
    request: HttpRequest,
    respond: Callable[[], HttpResponse],
    *,
    started: float | None = None,
) -> HttpResponse:
    """Run ``respond`` as an observed request: id in and out, then the access-log
    event, metrics and usage counts. The first middleware, and
    tenants.request_path.edge for the pages it answers before Django's handler
    (``started``: when it began, by ``time.perf_counter``)."""
    request_id = log_context.accepted_request_id(
        request.META.get(log_context.REQUEST_ID_META)
    )
    request.request_id = request_id
    tokens = log_context.bind(request_id=request_id, tenant="-", user_id="-")
    started = time.perf_counter() if started is None else started
    response = None
    status = 500
    try:
        response = respond()
        status = response.status_code
        response[log_context.REQUEST_ID_HEADER] = request_id
        return response
    finally:
        if request.path not in UNOBSERVED_PATHS:
            elapsed = time.perf_counter() - started
            _observe(request, response, status, elapsed)
        log_context.unbind(tokens)


def in_tenant_context(
    request: HttpRequest, respond: Callable[[], HttpResponse]
) -> HttpResponse:
    """Run ``respond`` with the tenant on log lines and in its in-flight gauge."""
    tenant = tenant_name(request)
    tokens = log_context.bind(tenant=tenant)
    observed_path = request.path not in UNOBSERVED_PATHS
    # one label for both ends, even if the top list changes meanwhile
    gauge = metrics.IN_FLIGHT.labels(metrics.tenant_labels.label(tenant))
    if observed_path:
        gauge.inc()
    try:
        return respond()
    finally:
        if observed_path:
            gauge.dec()
        log_context.unbind(tokens)


def observe_answered(
    request: HttpRequest, *, status: int, started: float, request_id: str
) -> None:
    """Observe a request answered without a response object (the WSGI edge's cache
    hits): the same access-log event, metrics and usage counts as ``observed``
    leaves, with ``request_id`` already chosen (``log_context.accepted_request_id``)
    and the time since ``started`` (``time.perf_counter``)."""
    request.request_id = request_id
    if request.path in UNOBSERVED_PATHS:
        return
    tokens = log_context.bind(
        request_id=request_id, tenant=tenant_name(request), user_id="-"
    )
    try:
        _observe(request, None, status, time.perf_counter() - started)
    finally:
        log_context.unbind(tokens)


class RequestObservationMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return observed(request, lambda: self.get_response(request))


def _meter(request: HttpRequest, tenant: str, status: int, seconds: float) -> None:
    """Usage counters: the request's one Redis round trip
    (tenants.metering.counters)."""
    refresh = metrics.top_tenants() if metrics.tenant_labels.refresh_due() else 0
    try:
        busiest = counters.record_request(
            schema=tenant,
            request=request,
            status=status,
            seconds=seconds,
            refresh_labels=refresh,
        )
    except Exception as exc:  # noqa: BLE001 - metering never fails a request
        logger.warning("usage not recorded: %s", exc)
        try:
            counters.run_deferred(request)  # a slot is never left to its lease
        except Exception as again:  # noqa: BLE001
            logger.warning("deferred Redis work not done: %s", again)
        return
    if busiest is not None:
        metrics.tenant_labels.update(busiest)


def _observe(
    request: HttpRequest,
    response: HttpResponse | None,
    status: int,
    seconds: float,
) -> None:
    tenant = tenant_name(request)
    state = request_state(request)
    metrics.record_request(
        tenant=tenant,
        status=status,
        seconds=seconds,
        rejection=state.rejection,
    )
    # a cached page is metered by the script that answered it
    metered = state.metered
    if tenant not in (PUBLIC_TENANT, UNKNOWN_TENANT) and not metered:
        _meter(request, tenant, status, seconds)
    if not access_logger.isEnabledFor(logging.INFO):
        return  # the event's fields cost something to gather
    log_request(
        tenant=tenant,
        request_id=request.request_id,
        user=user_id(request),
        client=client_ip(request),
        method=request.method,
        path=request.path,
        status=status,
        seconds=seconds,
    )


def log_request(
    *,
    tenant: str,
    request_id: str,
    user: str,
    client: str,
    method: str,
    path: str,
    status: int,
    seconds: float,
) -> None:
    """The access-log event of one request: one place for its fields."""
    access_logger.info(
        "%s %s %s",
        method,
        path,
        status,
        extra={
            "event": "request",
            "tenant": tenant,
            "request_id": request_id,
            "user_id": user,
            "client_ip": client,
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
        },
    )


def observe_remembered(
    *,
    tenant: str,
    request_id: str,
    client: str,
    method: str,
    path: str,
    status: int,
    seconds: float,
) -> None:
    """Observe a page a worker answered from its memory
    (tenants.request_path.local_hits): the same access-log event and metrics as any
    request of an anonymous visitor; its usage counts the caller holds back and
    sends in batches."""
    metrics.record_request(
        tenant=tenant, status=status, seconds=seconds, rejection=None
    )
    if not access_logger.isEnabledFor(logging.INFO):
        return
    tokens = log_context.bind(request_id=request_id, tenant=tenant, user_id="-")
    try:
        log_request(
            tenant=tenant,
            request_id=request_id,
            user="-",
            client=client,
            method=method,
            path=path,
            status=status,
            seconds=seconds,
        )
    finally:
        log_context.unbind(tokens)


class TenantContextMiddleware:
    """Right after the gate: log lines from here on carry the tenant, and the
    tenant's in-flight gauge counts the request while it runs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return in_tenant_context(request, lambda: self.get_response(request))
