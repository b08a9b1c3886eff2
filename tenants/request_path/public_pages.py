"""Which views serve public pages: their GETs and HEADs take the one-round-trip
decision (tenants.request_path.decision) and may be answered from the page cache.

Content marks its views (Wagtail's page serving, the sitemap) with ``public_pages``
in the tenant URLconf; the platform only asks ``serves_pages``.
"""

from collections.abc import Callable

from django.http import HttpResponse
from django.urls import Resolver404, resolve

# Paths are remembered per URLconf; a bound keeps random paths from growing memory.
MAX_REMEMBERED_PATHS = 20_000
_page_paths: dict[tuple[str | None, str], bool] = {}


def public_pages(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Mark ``view`` as serving public pages. The view keeps its own rate-limit
    decorator, which counts the requests the decision did not (POSTs, or any request
    while Redis fails)."""
    view.cms_public_page = True
    return view


def serves_pages(urlconf: str | None, path_info: str) -> bool:
    """Whether ``path_info`` resolves to a view marked with ``public_pages``."""
    key = (urlconf, path_info)
    known = _page_paths.get(key)
    if known is None:
        try:
            match = resolve(path_info, urlconf=urlconf)
            known = getattr(match.func, "cms_public_page", False)
        except Resolver404:
            known = False
        if len(_page_paths) >= MAX_REMEMBERED_PATHS:
            _page_paths.clear()
        _page_paths[key] = known
    return known
