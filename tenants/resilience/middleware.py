"""``DependencyGuardMiddleware``: what a request may wait for, and for how long.

Second middleware (right after the request's observation, before the tenant gate,
whose host lookup may need the database): it sets the database timeout of the
request's kind (the admin gets ``admin``, everything else ``public``), takes one of
the pool's database slots (``worker_reserve``; or the one the edge took for a render
beyond its plan's pace) - a request that finds none gets a 503 at once, so cached
pages keep their reserved workers - and turns a database
outage raised by a view into the 503 of ``outage`` (``handler500`` does it for an
outage raised by a middleware).
"""

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from tenants.request_state import request_state
from tenants.resilience import breakers, worker_reserve
from tenants.resilience.database import ADMIN, PUBLIC, request_kind
from tenants.resilience.outage import is_outage, unavailable_response

logger = logging.getLogger(__name__)

# Probes and the scrape must answer while the pool is saturated; static files need
# no database.
UNGUARDED_PREFIXES = ("/healthz", "/readyz", "/metrics", "/static/")
ADMIN_PREFIXES = ("/admin/", "/django-admin/")


class DependencyGuardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        breakers.publish_states()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path.startswith(UNGUARDED_PREFIXES):
            return self.get_response(request)
        kind = ADMIN if path.startswith(ADMIN_PREFIXES) else PUBLIC
        state = request_state(request)
        slot, state.database_slot = state.database_slot, None  # the edge's, if any
        if slot is None:
            slot = worker_reserve.take_slot()
        if slot is False:
            return unavailable_response(request, reason="database_slots")
        try:
            with request_kind(kind):
                return self.get_response(request)
        finally:
            if slot is not None:
                worker_reserve.release_slot(slot)

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponse | None:
        if is_outage(exception):
            logger.warning("database unavailable, answering 503: %s", exception)
            return unavailable_response(request, reason="database_unavailable")
        return None
