"""Wagtail's private names, used in this module only.

Wagtail looks the request's Site up with a query on every request
(``Site.find_for_request``); the platform finds it once per tenant host and keeps it
with the host map (tenants.registry.resolution). Wagtail's lookup itself
(``Site._find_for_request``) and the attribute where Wagtail reads a request's Site
(``request._wagtail_site``) are private; tests/tenants/test_adapters.py fails loudly
when either changes.
"""

from django.http import HttpRequest
from wagtail.models import Site


def find_site(request: HttpRequest) -> Site | None:
    """Wagtail's own lookup of the request's Site, uncached."""
    return Site._find_for_request(request)


def attach_site(request: HttpRequest, site: Site | None) -> None:
    """Make ``Site.find_for_request(request)`` answer ``site`` without a query."""
    request._wagtail_site = site
