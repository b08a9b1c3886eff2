"""The outermost WSGI layer: public-page timeouts from the first query, and a 503
instead of a crash when the database is out before Django's handler runs.

tenants.request_path.edge resolves the request's host before Django's handler; for a
host not in the worker's map that is a query, whose failure would otherwise escape as
the server's bare 500. Here it becomes the 503 of ``tenants.resilience.outage``.
"""

from collections.abc import Callable, Iterable

from django.core.handlers.wsgi import WSGIRequest

from tenants.resilience.database import PUBLIC, request_kind
from tenants.resilience.outage import is_outage, unavailable_response


class OutageGuard:
    def __init__(self, application: Callable) -> None:
        self.application = application

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        with request_kind(PUBLIC):
            try:
                return self.application(environ, start_response)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                response = unavailable_response(
                    WSGIRequest(environ), reason="database_unavailable"
                )
                start_response(
                    f"{response.status_code} {response.reason_phrase}",
                    list(response.items()),
                )
                return [response.content]
