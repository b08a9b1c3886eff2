"""What a tenant's domains mean for a request it serves: the canonical host and HSTS.

The primary domain is canonical: a request on any other of the tenant's domains is
answered with a permanent redirect to the same path and query on the primary (which
is how a tenant chooses between its apex and ``www``: it makes one primary). Decided
from the resolved tenant alone (``primary_host`` travels with it from the host map),
so it costs no query. HSTS is sent on HTTPS answers of tenants that opted in while
their plan includes it.

Used by ``DomainPolicyMiddleware`` (right after the gate) and by the page-cache edge
(tenants.request_path.edge), which must not answer a cached page on a non-canonical
host.
"""

from collections.abc import Callable

from django.conf import settings
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
)

from tenants.domains.proof import CHALLENGE_PATH
from tenants.models import Tenant
from tenants.registry.validation import is_platform_domain
from tenants.tariffs.features import tenant_feature

# Probes name a host of their own choosing and must get the answer, not a redirect.
NEVER_REDIRECTED = ("/healthz", "/readyz", CHALLENGE_PATH)


def _split_host(request: HttpRequest) -> tuple[str, str]:
    raw = (request.META.get("HTTP_HOST") or "").strip().lower()
    if raw.startswith("["):
        return raw, ""
    host, _, port = raw.partition(":")
    return host, port


def canonical_location(request: HttpRequest, tenant: Tenant) -> str | None:
    """The URL on the primary domain this request should go to, or None when it is
    on the primary already (or is a probe)."""
    primary = getattr(tenant, "primary_host", None)
    host, port = _split_host(request)
    if not primary or not host or host == primary:
        return None
    if request.path.startswith(NEVER_REDIRECTED):
        return None
    if is_platform_domain(host) == is_platform_domain(primary):
        # same kind of host, same edge: keep the scheme and port the visitor used
        scheme = "https" if request.is_secure() else "http"
        suffix = f":{port}" if port else ""
    elif is_platform_domain(primary):
        scheme = settings.CMS_SITE_SCHEME
        suffix = _port_suffix(scheme, settings.CMS_SITE_PORT)
    else:
        scheme = "https"
        suffix = _port_suffix(scheme, settings.CMS_CUSTOM_DOMAIN_PORT)
    return f"{scheme}://{primary}{suffix}{request.get_full_path()}"


def _port_suffix(scheme: str, port: int) -> str:
    return "" if port == (443 if scheme == "https" else 80) else f":{port}"


class PermanentRedirectKeepingMethod(HttpResponsePermanentRedirect):
    status_code = 308


def canonical_redirect(request: HttpRequest, tenant: Tenant) -> HttpResponse | None:
    """301 (308 for methods other than GET and HEAD, which must not become GETs)."""
    location = canonical_location(request, tenant)
    if location is None:
        return None
    if request.method in ("GET", "HEAD"):
        return HttpResponsePermanentRedirect(location)
    return PermanentRedirectKeepingMethod(location)


def hsts_applies(tenant: Tenant) -> bool:
    return bool(tenant.hsts_enabled and tenant_feature(tenant, "hsts"))


def add_hsts(request: HttpRequest, response: HttpResponse, tenant: Tenant) -> None:
    """Strict-Transport-Security on HTTPS answers of a tenant that opted in. Not
    ``includeSubDomains``: a tenant's domain's subdomains may not be the tenant's."""
    if request.is_secure() and hsts_applies(tenant):
        response.headers.setdefault(
            "Strict-Transport-Security", f"max-age={settings.CMS_HSTS_SECONDS}"
        )


class DomainPolicyMiddleware:
    """Right after the tenant gate: redirect to the primary domain, add HSTS."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = getattr(request, "tenant", None)
        if tenant is None:
            return self.get_response(request)
        redirect = canonical_redirect(request, tenant)
        if redirect is not None:
            return redirect
        response = self.get_response(request)
        add_hsts(request, response, tenant)
        return response
