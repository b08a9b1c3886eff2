"""Public pages' hot path: admission, the tariff's rate limit and the per-tenant page
cache for anonymous visitors, decided in one Redis round trip.

``PublicPageMiddleware`` handles GET and HEAD requests for the views marked with
``public_pages`` (Wagtail's page serving, the sitemap). It queues on one pipeline the
concurrency slot (tenants.admission), the count against ``public_reads_per_minute``
(django-ratelimit's counter, tenants.limits) and, for an anonymous visitor, the page
cache lookup; then it refuses (503 over the concurrency cap, 429 over the rate),
answers from the cache, or lets the request through to the view. The slot is released
in the request's metering round trip after the response (tenants.usage), so a cached
hit costs two round trips in all. It sits before sessions, CSRF, authentication and
messages, so a hit pays for none of them.

A page read by a visitor without a session cookie is the same for every such visitor,
so its rendered response is kept in Redis and served without touching PostgreSQL or
the template engine. Entries live under the tenant's cache keys (the cache alias's key
function adds the schema) and are keyed by host, path and query. Headers added by the
middleware inside this one (X-Frame-Options, say) are stored with the page; those of
the middleware outside it (security headers, the request id) are added to every
answer.

Invalidation is a per-tenant generation counter: each entry records the generation it
was rendered under, and publishing, unpublishing, moving or deleting a page of a tenant
bumps that tenant's counter (one ``INCR``), which turns every entry of that tenant -
and no other tenant's - into a miss. The lookup reads the generation and the entry
together. An entry is tagged with the generation read *before* rendering, so a page
rendered while a publish commits is never stored as current.
"""

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils.cache import patch_vary_headers
from django_redis import get_redis_connection

from tenants.admission import busy_response, queue_slot
from tenants.limits import limited_response, queue_count
from tenants.usage import defer_to_metering

logger = logging.getLogger(__name__)

CACHE_ALIAS = "default"
GENERATION_KEY = "page-cache:generation"
STATUS_HEADER = "X-Page-Cache"
# Headers that belong to one response only, or are added again on the way out.
_UNSTORED_HEADERS = frozenset({"set-cookie", "vary", "ratelimit", "ratelimit-policy"})


@dataclass(frozen=True)
class CachedPage:
    """What is kept of a response: small, explicit, and picklable."""

    generation: int
    status: int
    headers: tuple[tuple[str, str], ...]
    content: bytes

    def response(self) -> HttpResponse:
        response = HttpResponse(self.content, status=self.status)
        for name, value in self.headers:
            response[name] = value
        return response


def cache_seconds() -> int:
    return int(getattr(settings, "CMS_PAGE_CACHE_SECONDS", 0))


def page_key(request: HttpRequest) -> str:
    """Host (with port), path and query: the same path on two hosts of one tenant may
    render different absolute URLs, and the schema prefix separates tenants."""
    host = request.META.get("HTTP_HOST", "").lower()
    query = request.META.get("QUERY_STRING", "")
    digest = hashlib.sha256(f"{host}\n{request.path}\n{query}".encode()).hexdigest()
    return f"page-cache:page:{digest[:40]}"


def is_cacheable_request(request: HttpRequest) -> bool:
    """Anonymous reads of the live site only."""
    if request.method not in ("GET", "HEAD"):
        return False
    if getattr(request, "tenant", None) is None or getattr(
        request, "is_preview", False
    ):
        return False
    return settings.SESSION_COOKIE_NAME not in request.COOKIES


def is_cacheable_response(request: HttpRequest, response: HttpResponse) -> bool:
    """A 200 for everybody: no cookie set or about to be set, nothing private."""
    if response.status_code != 200 or response.streaming or response.cookies:
        return False
    if request.META.get("CSRF_COOKIE_NEEDS_UPDATE"):  # the page used a CSRF token
        return False
    session = getattr(request, "session", None)
    if session is not None and session.modified:
        return False
    cache_control = response.get("Cache-Control", "").lower()
    return "private" not in cache_control and "no-store" not in cache_control


def _start_generation() -> int | None:
    """A tenant's first generation: a timestamp, so a counter lost from Redis never
    restarts at a value that old entries still carry."""
    cache = caches[CACHE_ALIAS]
    cache.add(GENERATION_KEY, time.time_ns(), timeout=None)
    return cache.get(GENERATION_KEY)


def _store(request: HttpRequest, response: HttpResponse, generation: int) -> None:
    if hasattr(response, "render") and not response.is_rendered:
        response.render()
    entry = CachedPage(
        generation=generation,
        status=response.status_code,
        headers=tuple(
            (name, value)
            for name, value in response.items()
            if name.lower() not in _UNSTORED_HEADERS
        ),
        content=response.content,
    )
    caches[CACHE_ALIAS].set(page_key(request), entry, timeout=cache_seconds())


def public_pages(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Mark ``view`` as serving public pages: its GET and HEAD requests take the hot
    path of ``PublicPageMiddleware``. The view keeps its own rate-limit decorator,
    which counts the requests that do not (POSTs, or any request if Redis failed)."""
    view.cms_public_page = True
    return view


@dataclass(frozen=True)
class QueuedLookup:
    """The tenant's generation and this page's entry, asked for on a pipeline."""

    key: str
    index: int

    def result(self, results: list) -> tuple[int | None, CachedPage | None]:
        found = results[self.index]
        if isinstance(found, Exception):
            return None, None  # the cache is an optimisation: a failed read is a miss
        decode = caches[CACHE_ALIAS].client.decode
        raw_generation, raw_entry = found
        generation = None if raw_generation is None else decode(raw_generation)
        entry = None if raw_entry is None else decode(raw_entry)
        if generation is None or not isinstance(entry, CachedPage):
            return generation, None
        return generation, entry if entry.generation == generation else None


def _queue_lookup(pipe, request: HttpRequest) -> QueuedLookup:
    cache = caches[CACHE_ALIAS]
    key = page_key(request)
    pipe.mget(cache.make_key(GENERATION_KEY), cache.make_key(key))
    return QueuedLookup(key, len(pipe) - 1)


# Paths are remembered per URLconf; a bound keeps random paths from growing memory.
MAX_REMEMBERED_PATHS = 20_000
READ_DIMENSION = "public_reads_per_minute"


class PublicPageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._page_paths: dict[tuple[str | None, str], bool] = {}

    def _serves_pages(self, request: HttpRequest) -> bool:
        urlconf = getattr(request, "urlconf", None)
        key = (urlconf, request.path_info)
        known = self._page_paths.get(key)
        if known is None:
            try:
                match = resolve(request.path_info, urlconf=urlconf)
                known = getattr(match.func, "cms_public_page", False)
            except Resolver404:
                known = False
            if len(self._page_paths) >= MAX_REMEMBERED_PATHS:
                self._page_paths.clear()
            self._page_paths[key] = known
        return known

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = getattr(request, "tenant", None)
        if (
            tenant is None
            or request.method not in ("GET", "HEAD")
            or not self._serves_pages(request)
        ):
            return self.get_response(request)
        pipe = get_redis_connection("ratelimit").pipeline(transaction=False)
        slot = None
        try:
            slot = queue_slot(pipe, tenant.schema_name, tenant.plan.concurrent_requests)
            count = queue_count(pipe, request, READ_DIMENSION)
            lookup = None
            if cache_seconds() > 0 and is_cacheable_request(request):
                lookup = _queue_lookup(pipe, request)
            results = pipe.execute(raise_on_error=False)
            admitted = slot.admitted(results)
            decision = count.decision(results) if count is not None else None
        except Exception as exc:  # noqa: BLE001 - the regular path applies the policy
            logger.warning("public page hot path unavailable: %s", exc)
            if slot is not None:
                defer_to_metering(request, slot.release)
            return self.get_response(request)
        if not admitted:
            if count is not None:
                # refused before it was served: the request does not use up a read
                defer_to_metering(request, count.refund)
            return busy_response(request)
        defer_to_metering(request, slot.release)
        request.cms_admitted = True
        if decision is not None:
            request.cms_rate_decision = decision
            if decision.limited:
                return limited_response(request, decision)
        generation, entry = lookup.result(results) if lookup else (None, None)
        if entry is not None:
            response = entry.response()
            # Signed-in editors get other content: downstream caches must know.
            patch_vary_headers(response, ("Cookie",))
            response[STATUS_HEADER] = "hit"
            if decision is not None:
                for name, value in decision.headers().items():
                    response[name] = value
            return response
        if lookup is not None and generation is None:
            generation = _start_generation()
        response = self.get_response(request)
        if generation is not None and is_cacheable_response(request, response):
            _store(request, response, generation)
            response[STATUS_HEADER] = "miss"
        return response


def purge_tenant_pages() -> None:
    """Invalidate every cached page of the tenant whose schema is active: at once, and
    again when the current transaction commits (a visitor who read the old page while
    it was committing may have cached it under the first bump; after a rollback the
    first bump merely costs one re-render per page)."""
    schema_name = getattr(connection, "schema_name", "-")
    cache = caches[CACHE_ALIAS]
    # The key function reads the active schema: build the key now, not on commit.
    generation_key = cache.make_key(GENERATION_KEY)

    def bump() -> None:
        try:
            cache.client.get_client(write=True).incr(generation_key)
        except Exception:
            logger.exception("page cache: could not purge tenant %s", schema_name)

    bump()
    if connection.in_atomic_block:
        transaction.on_commit(bump)


def _purge_on_page_change(sender, instance, **kwargs) -> None:
    purge_tenant_pages()


def _purge_on_page_delete(sender, instance, **kwargs) -> None:
    from wagtail.models import Page

    if isinstance(instance, Page):
        purge_tenant_pages()


def connect_purge_signals() -> None:
    """Purge a tenant's pages whenever what its visitors see may have changed: a
    publish, unpublish, move (URLs change) or delete of any of its pages."""
    from django.db.models.signals import post_delete
    from wagtail.signals import page_published, page_unpublished, post_page_move

    uid = "content.page_cache"
    page_published.connect(_purge_on_page_change, dispatch_uid=f"{uid}.published")
    page_unpublished.connect(_purge_on_page_change, dispatch_uid=f"{uid}.unpublished")
    post_page_move.connect(_purge_on_page_change, dispatch_uid=f"{uid}.moved")
    post_delete.connect(_purge_on_page_delete, dispatch_uid=f"{uid}.deleted")
