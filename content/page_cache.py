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
