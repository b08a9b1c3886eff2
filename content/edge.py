"""The page-cache edge: cached public pages answered before Django's handler.

A cached page costs one Redis round trip (content.hot_path's script: concurrency
slot, the plan's rate, the lookup and the page's usage counts); what remained was
Django's request handling around it (request signals, a dozen middleware, URL
resolution), several times the cost of the answer itself. ``PageCacheEdge`` wraps the
WSGI application and answers a cache hit itself - and a page request the decision
refuses (429, 503), so that a flood of refused requests costs no Django either - with
the same decision, the same headers (Django's SecurityMiddleware on the stored
response, rate-limit headers, the request id) and the same observation
(tenants.observability.observation: access-log event, metrics, usage counts).

Everything else goes to Django unchanged: other methods, visitors with a session
cookie, hosts without an active tenant, requests that Django would redirect to HTTPS,
and paths that are not public pages. A request the edge made the round trip for but
could not answer (a page to render) carries that round trip on to
``PublicPageMiddleware`` in its WSGI environ, so nothing is counted twice.
"""

import logging
import time
from collections.abc import Callable, Iterable

from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.middleware.security import SecurityMiddleware

from content.hot_path import (
    EDGE_HOT_PATH,
    RENDER,
    HotPath,
    serves_pages,
    settle,
    take_hot_path,
)
from content.page_cache import cache_seconds
from tenants.domains.policy import add_hsts, canonical_location
from tenants.observability.observation import in_tenant_context, observed
from tenants.registry.resolution import resolve_tenant
from tenants.request_path.gate import request_host
from tenants.tariffs.admission import release_slot

logger = logging.getLogger(__name__)


class PageCacheEdge:
    def __init__(self, application: Callable) -> None:
        self.application = application
        self.security = SecurityMiddleware(lambda request: HttpResponse())
        self.public_hosts = {host.lower() for host in settings.CMS_PUBLIC_HOSTS}

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        response = self._answer(environ)
        if response is None:
            body = self.application(environ, start_response)
            self._release_unclaimed(environ)
            return body
        headers = list(response.items())
        start_response(f"{response.status_code} {response.reason_phrase}", headers)
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else response.content]

    def _candidate(self, request: HttpRequest):
        """The request's tenant if the edge may answer it, else None."""
        if request.method not in ("GET", "HEAD") or cache_seconds() <= 0:
            return None
        if settings.SESSION_COOKIE_NAME in request.COOKIES:
            return None
        host = request_host(request)
        if host in self.public_hosts:
            return None
        tenant = resolve_tenant(host)
        if tenant is None or tenant.is_suspended:
            return None
        if settings.SECURE_SSL_REDIRECT and not request.is_secure():
            return None
        if canonical_location(request, tenant) is not None:
            return None  # Django redirects it to the primary domain
        if not serves_pages(settings.ROOT_URLCONF, request.path_info):
            return None
        return tenant

    def _answer(self, environ: dict) -> HttpResponse | None:
        started = time.perf_counter()
        request = WSGIRequest(environ)
        tenant = self._candidate(request)
        if tenant is None:
            return None
        request.tenant = tenant
        connection.set_tenant(tenant)
        try:
            hot_path = take_hot_path(
                request, tenant, seconds_so_far=time.perf_counter() - started
            )
            if hot_path is None or hot_path.outcome == RENDER:
                environ[EDGE_HOT_PATH] = hot_path  # Django must not count it again
                return None
            return observed(
                request,
                lambda: in_tenant_context(
                    request, lambda: self._settled(request, hot_path)
                ),
                started=started,
            )
        finally:
            connection.set_schema_to_public()

    def _settled(self, request: HttpRequest, hot_path: HotPath) -> HttpResponse:
        """A cached page, or a refusal (429 over the rate, 503 over the
        concurrency cap): a flooding tenant's refused requests cost no Django."""
        response = settle(request, hot_path)
        add_hsts(request, response, request.tenant)
        return self.security.process_response(request, response)

    @staticmethod
    def _release_unclaimed(environ: dict) -> None:
        """Django answered without reaching ``PublicPageMiddleware`` (the tenant map
        changed in between, say): release the slot taken for it."""
        hot_path = environ.pop(EDGE_HOT_PATH, None)
        if hot_path is None or hot_path.outcome != RENDER:
            return
        try:
            release_slot(hot_path.schema_name, hot_path.token)
        except Exception as exc:  # noqa: BLE001 - a held slot expires with its lease
            logger.warning("could not release a concurrency slot: %s", exc)
