"""The request decision inside Django: thin adapters around the rules.

``PublicPageMiddleware`` applies the public page decision (tenants.request_path.
decision) to GET and HEAD requests of the views marked ``public_pages`` - or takes the
one the WSGI edge already made - renders what was not answered, and stores a
cacheable result. ``TenantAdmissionMiddleware`` applies the concurrency cap
(tenants.tariffs.admission) to every other tenant request but the admin's, so editors
are never locked out by their visitors.
"""

import logging
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from tenants.request_path.decision import apply_decision, decide_page_request
from tenants.request_path.page_cache import (
    STATUS_HEADER,
    is_cacheable_response,
    start_generation,
    store,
)
from tenants.request_path.public_pages import serves_pages
from tenants.request_state import request_state
from tenants.tariffs.admission import acquire_slot, busy_response, release_slot
from tenants.tariffs.limits import record_limiter_failure

logger = logging.getLogger(__name__)


class PublicPageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = getattr(request, "tenant", None)
        if (
            tenant is None
            or request.method not in ("GET", "HEAD")
            or not serves_pages(getattr(request, "urlconf", None), request.path_info)
        ):
            return self.get_response(request)
        state = request_state(request)
        if state.page_decided:  # by the edge; None: its round trip failed
            decision, state.page, state.page_decided = state.page, None, False
        else:
            decision = decide_page_request(request, tenant)
        if decision is None:
            return self.get_response(request)
        answer = apply_decision(request, decision)
        if answer is not None:
            return answer
        generation = decision.generation
        if decision.looked_up and generation is None:
            generation = start_generation(tenant.schema_name)
        response = self.get_response(request)
        if generation is not None and is_cacheable_response(request, response):
            store(tenant.schema_name, request, response, generation)
            response[STATUS_HEADER] = "miss"
        return response


class TenantAdmissionMiddleware:
    """Admission control for visitors and API clients; the admin is exempt so editors
    are never locked out by their visitors."""

    EXEMPT_PREFIXES = ("/admin/", "/static/", "/healthz", "/readyz")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = getattr(request, "tenant", None)
        if (
            tenant is None
            or request_state(request).admitted  # the public page decision did it
            or request.path.startswith(self.EXEMPT_PREFIXES)
        ):
            return self.get_response(request)
        try:
            token = acquire_slot(tenant.schema_name, tenant.plan.concurrent_requests)
        except Exception as exc:  # noqa: BLE001 - Redis down: decide by policy
            record_limiter_failure()
            if getattr(settings, "CMS_RATELIMIT_FAIL_CLOSED", False):
                logger.error("admission unavailable, failing closed: %s", exc)
                return busy_response(request)
            logger.warning("admission unavailable, failing open: %s", exc)
            return self.get_response(request)
        if token is None:
            return busy_response(request)
        try:
            return self.get_response(request)
        finally:
            try:
                release_slot(tenant.schema_name, token)
            except Exception:
                logger.exception("could not release a concurrency slot")
