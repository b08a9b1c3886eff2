"""The answer a request gets while a dependency it needs is out: a fast 503.

A request whose database call timed out or was refused by the open breaker, or that
found no free database slot, gets the tenant's "one moment" page (JSON for API
clients) with ``Retry-After`` - never a 500 and never a traceback. Rendering it needs
neither the database nor Redis.
"""

import json
import logging

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from tenants.request_path.negotiation import wants_json
from tenants.request_state import request_state
from tenants.resilience import breakers
from tenants.resilience.database import DatabaseTimeout, DatabaseUnavailable

logger = logging.getLogger(__name__)


def is_outage(error: BaseException | None) -> bool:
    """Whether ``error`` means the database did not answer (as opposed to a bug or
    a constraint): a connection failure, a client-side timeout, an open breaker."""
    if error is None:
        return False
    if isinstance(error, breakers.DependencyUnavailable):
        return True
    if not isinstance(error, DatabaseError):
        return False
    cause = error.__cause__
    if isinstance(cause, DatabaseTimeout | DatabaseUnavailable):
        return True
    from django.db import OperationalError, connection

    # OperationalError covers bugs too (a cancelled statement): only a connection
    # that is gone, or could not be opened, is an outage
    return isinstance(error, OperationalError) and (
        connection.connection is None or connection.connection.closed
    )


def retry_after_seconds() -> int:
    wait = breakers.database.retry_after()
    return max(1, round(wait or breakers._cooldown()))


def unavailable_response(request: HttpRequest, *, reason: str) -> HttpResponse:
    """503 with Retry-After: the tenant's friendly page, or JSON for the API."""
    retry_after = retry_after_seconds()
    if wants_json(request):
        body = json.dumps(
            {
                "error": "temporarily_unavailable",
                "message": "The site cannot answer this request right now. "
                f"Try again in {retry_after} seconds.",
            }
        )
        response = HttpResponse(body, status=503, content_type="application/json")
    else:
        tenant = getattr(request, "tenant", None)
        body = render_to_string(
            "tenants/unavailable.html",
            {
                "retry_after": retry_after,
                "tenant_name": getattr(tenant, "name", ""),
            },
        )
        response = HttpResponse(body, status=503)
    response["Retry-After"] = str(retry_after)
    response["Cache-Control"] = "no-store"
    request_state(request).rejection = reason
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: an unhandled database outage becomes the 503 above; any other
    error keeps Django's 500 page (Django calls this inside its ``except``)."""
    import sys

    from django.views.defaults import server_error as django_server_error

    error = sys.exc_info()[1]
    if is_outage(error):
        logger.warning("database unavailable, answering 503: %s", error)
        return unavailable_response(request, reason="database_unavailable")
    return django_server_error(request)
