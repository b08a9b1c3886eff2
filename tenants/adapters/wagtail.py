"""Wagtail's private names, used in this module only.

Wagtail looks the request's Site up with a query on every request
(``Site.find_for_request``); the platform finds it once per tenant host and keeps it
with the host map (tenants.registry.resolution). Wagtail's ranking of the candidate
Sites is repeated here over a cheaper query (``site_for_hostname``), and the attribute
where Wagtail reads a request's Site (``request._wagtail_site``) is private;
tests/tenants/test_adapters.py fails loudly when either changes.
"""

from django.db.models import Q
from django.http import HttpRequest
from django.http.request import split_domain_port
from wagtail.models import Site
from wagtail.models.sites import (
    MATCH_DEFAULT,
    MATCH_HOSTNAME,
    MATCH_HOSTNAME_DEFAULT,
    MATCH_HOSTNAME_PORT,
)


def find_site(request: HttpRequest) -> Site | None:
    """Wagtail's lookup of the request's Site (``Site._find_for_request``), uncached."""
    hostname = split_domain_port(request._get_raw_host())[0]
    return site_for_hostname(hostname, request.get_port())


def site_for_hostname(hostname: str, port: int | str) -> Site | None:
    """Wagtail's ``get_site_for_hostname`` (None where it raises), its candidates
    ranked in Python over one plain query: Wagtail ranks them in SQL with a CASE
    annotation and joins the root page, ~2 ms of ORM work that a fresh worker pays
    on its first page of every tenant (half of what a fleet of 1,000 tenants cost a
    recycled worker, docs/benchmarks.md). The platform keeps the Site without its
    root page anyway (tenants.registry.resolution.tenant_site). The ranking is
    Wagtail's, rule for rule; tests/tenants/test_adapters.py compares the two on
    every combination of hosts, ports and default sites it sets up."""
    sites = list(Site.objects.filter(Q(hostname=hostname) | Q(is_default_site=True)))

    def match(site: Site) -> int:
        if site.hostname == hostname and str(site.port) == str(port):
            return MATCH_HOSTNAME_PORT
        if site.hostname == hostname and site.is_default_site:
            return MATCH_HOSTNAME_DEFAULT
        return MATCH_DEFAULT if site.is_default_site else MATCH_HOSTNAME

    sites.sort(key=match)
    if not sites:
        return None
    best = match(sites[0])
    if len(sites) == 1 or best in (MATCH_HOSTNAME_PORT, MATCH_HOSTNAME_DEFAULT):
        return sites[0]
    if best == MATCH_DEFAULT:
        # the default, unless exactly one other site has the hostname
        return sites[len(sites) == 2]
    return None


def attach_site(request: HttpRequest, site: Site | None) -> None:
    """Make ``Site.find_for_request(request)`` answer ``site`` without a query."""
    request._wagtail_site = site
