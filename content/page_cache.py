"""What of a tenant's site may be cached for anonymous visitors, and when to forget it.

The platform's page cache (tenants.request_path.page_cache) stores and looks up; this
module is the one place that decides whether a request may be answered from it and
whether a response may be stored (``policy``, installed at start-up), and which
changes purge a tenant's pages (``connect_purge_signals``).
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from tenants.request_path.page_cache import (
    CachePolicy,
    purge_tenant_pages,
    set_policy,
)
from tenants.request_state import request_state

# --- Policy: what may be stored and served from the cache (the one place that says) --
# Request: an anonymous read of the live site. Response: the same for every such
# visitor (no cookie set or read, no CSRF token, nothing varying on a header that is
# not in the key) and of a page whose every ancestor is public too (no view
# restriction of any kind). Invalidation: any change a visitor could see, including
# every view restriction added, changed or removed, bumps the tenant's generation.

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
    request_state(request).served_page = page


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
    page = request_state(request).served_page
    return page is None or not is_private_page(page)


def install_policy() -> None:
    set_policy(
        CachePolicy(request=is_cacheable_request, response=is_cacheable_response)
    )


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
