"""Per-tenant page cache for anonymous visitors.

A public page read by a visitor without a session cookie is the same for every such
visitor, so its rendered response is kept in Redis and served without touching
PostgreSQL or the template engine. Entries live under the tenant's cache keys (the
cache alias's key function adds the schema) and are keyed by host, path and query.
Reading happens in content.hot_path's one round trip; this module stores, keys and
invalidates. Headers added by the middleware inside ``PublicPageMiddleware``
(X-Frame-Options, say) are stored with the page; those of the middleware outside it
(security headers, the request id) are added to every answer.

Invalidation is a per-tenant generation counter: each entry records the generation it
was rendered under, and publishing, unpublishing, moving or deleting a page of a tenant
bumps that tenant's counter (one ``INCR``), which turns every entry of that tenant -
and no other tenant's - into a miss. An entry is a hash of its generation (``g``) and
the pickled page (``p``), so the lookup script compares generations in Redis and
sends back only a current page. An entry is tagged with the generation read *before*
rendering, so a page rendered while a publish commits is never stored as current.
"""

import hashlib
import logging
import pickle
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

CACHE_ALIAS = "default"
GENERATION_KEY = "page-cache:generation"
STATUS_HEADER = "X-Page-Cache"
# Headers that belong to one response only, or are added again on the way out.
_UNSTORED_HEADERS = frozenset({"set-cookie", "vary", "ratelimit", "ratelimit-policy"})


@dataclass(frozen=True)
class CachedPage:
    """What is kept of a response: small, explicit, and picklable. (Its generation
    is stored beside it, in the entry's hash, for the lookup script to compare.)"""

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
    return f"page-cache:entry:{digest[:40]}"


# --- Policy: what may be stored and served from the cache (the one place that says) --
# Request: an anonymous read of the live site. Response: the same for every such
# visitor (no cookie set or read, no CSRF token, nothing varying on a header that is
# not in the key) and of a page whose every ancestor is public too (no view
# restriction of any kind). Invalidation: any change a visitor could see, including
# every view restriction added, changed or removed, bumps the tenant's generation.

# Request attribute where the ``before_serve_page`` hook leaves the page served.
SERVED_PAGE_ATTRIBUTE = "cms_served_page"
# Vary values under which one stored copy still fits every cookie-less visitor.
_SHARED_VARY = frozenset({"cookie", "accept-encoding"})


def is_cacheable_request(request: HttpRequest) -> bool:
    """Anonymous reads of the live site only."""
    if request.method not in ("GET", "HEAD"):
        return False
    if getattr(request, "tenant", None) is None or getattr(
        request, "is_preview", False
    ):
        return False
    return settings.SESSION_COOKIE_NAME not in request.COOKIES


def note_served_page(request: HttpRequest, page) -> None:
    """Remember which page answers ``request`` (Wagtail's ``before_serve_page``
    hook), so that the response policy can ask about its privacy."""
    setattr(request, SERVED_PAGE_ATTRIBUTE, page)


def is_private_page(page) -> bool:
    """Whether any view restriction (password, login, groups) applies to ``page``,
    set on the page itself or on any of its ancestors: such a page is never
    stored, whatever the response looked like. One query, paid only on a render."""
    return page.get_view_restrictions().exists()


def _varies_per_visitor(response: HttpResponse) -> bool:
    vary = {
        value.strip().lower()
        for value in response.get("Vary", "").split(",")
        if value.strip()
    }
    return bool(vary - _SHARED_VARY)


def is_cacheable_response(request: HttpRequest, response: HttpResponse) -> bool:
    """A 200 for everybody: no cookie set or about to be set, nothing private, and
    not a page under a view restriction (its own or an ancestor's)."""
    if response.status_code != 200 or response.streaming or response.cookies:
        return False
    if request.META.get("CSRF_COOKIE_NEEDS_UPDATE"):  # the page used a CSRF token
        return False
    session = getattr(request, "session", None)
    if session is not None and session.modified:
        return False
    cache_control = response.get("Cache-Control", "").lower()
    if "private" in cache_control or "no-store" in cache_control:
        return False
    if _varies_per_visitor(response):
        return False
    page = getattr(request, SERVED_PAGE_ATTRIBUTE, None)
    return page is None or not is_private_page(page)


def start_generation() -> int | None:
    """A tenant's first generation: a timestamp, so a counter lost from Redis never
    restarts at a value that old entries still carry."""
    cache = caches[CACHE_ALIAS]
    cache.add(GENERATION_KEY, time.time_ns(), timeout=None)
    return cache.get(GENERATION_KEY)


def store(request: HttpRequest, response: HttpResponse, generation: int) -> None:
    if hasattr(response, "render") and not response.is_rendered:
        response.render()
    entry = CachedPage(
        status=response.status_code,
        headers=tuple(
            (name, value)
            for name, value in response.items()
            if name.lower() not in _UNSTORED_HEADERS
        ),
        content=response.content,
    )
    _, key = entry_keys(request)
    payload = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        client = caches[CACHE_ALIAS].client.get_client(write=True)
        pipe = client.pipeline(transaction=False)
        pipe.hset(key, mapping={"g": str(generation), "p": payload})
        pipe.expire(key, cache_seconds())
        pipe.execute()
    except Exception as exc:  # noqa: BLE001 - the page was served; caching is a bonus
        logger.warning("page cache: could not store %s: %s", request.path, exc)


def entry_keys(request: HttpRequest) -> tuple[str, str]:
    """The Redis keys of the active tenant's generation and of this page's entry."""
    cache = caches[CACHE_ALIAS]
    return cache.make_key(GENERATION_KEY), cache.make_key(page_key(request))


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


def _purge_on_restriction_change(sender, **kwargs) -> None:
    purge_tenant_pages()


def connect_purge_signals() -> None:
    """Purge a tenant's pages whenever what its visitors see may have changed: a
    publish, unpublish, move (URLs change) or delete of any of its pages, and any
    view restriction of a page or of a collection added, changed or removed
    (its groups included): the restricted page, its descendants and every listing
    that named them must not be answered from the cache any more."""
    from django.db.models.signals import m2m_changed, post_delete, post_save
    from wagtail.models import CollectionViewRestriction, PageViewRestriction
    from wagtail.signals import page_published, page_unpublished, post_page_move

    uid = "content.page_cache"
    page_published.connect(_purge_on_page_change, dispatch_uid=f"{uid}.published")
    page_unpublished.connect(_purge_on_page_change, dispatch_uid=f"{uid}.unpublished")
    post_page_move.connect(_purge_on_page_change, dispatch_uid=f"{uid}.moved")
    post_delete.connect(_purge_on_page_delete, dispatch_uid=f"{uid}.deleted")
    for model in (PageViewRestriction, CollectionViewRestriction):
        name = f"{uid}.{model.__name__}"
        for signal in (post_save, post_delete):
            signal.connect(
                _purge_on_restriction_change,
                sender=model,
                dispatch_uid=f"{name}.{signal}",
            )
        m2m_changed.connect(
            _purge_on_restriction_change,
            sender=model.groups.through,
            dispatch_uid=f"{name}.groups",
        )
