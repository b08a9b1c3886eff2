"""The tenant gate: first middleware of every request.

Host -> tenant (cached, tenants.registry.resolution), then: the operator's public
hosts get the public schema and URLconf; unknown hosts a 404 page; suspended tenants
a 503 page; everyone else runs in their own schema with the tenant URLconf.
"""

from collections.abc import Callable

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import set_urlconf

from tenants.registry.resolution import resolve_tenant, tenant_site


def request_host(request: HttpRequest) -> str:
    """The Host header without port, lower-case; raw so a bad host cannot raise here."""
    host = request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME", "")
    host = host.strip().lower()
    if host.startswith("["):  # IPv6 literal
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


def unknown_host_response(host: str) -> HttpResponse:
    body = render_to_string("tenants/unknown_host.html", {"host": host})
    return HttpResponse(body, status=404)


def suspended_response(tenant_name: str) -> HttpResponse:
    body = render_to_string("tenants/suspended.html", {"tenant_name": tenant_name})
    response = HttpResponse(body, status=503)
    response["Retry-After"] = "3600"
    response.cms_rejection = "suspended"
    return response


class TenantGateMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.public_hosts = {host.lower() for host in settings.CMS_PUBLIC_HOSTS}
        # behind a transaction-mode pooler, a tenant's queries must share the
        # transaction that set its schema (tenants.db_backend)
        self.one_transaction_per_request = settings.CMS_DB_TRANSACTION_POOLING

    def __call__(self, request: HttpRequest) -> HttpResponse:
        connection.set_schema_to_public()
        host = request_host(request)
        if host in self.public_hosts:
            request.tenant = None
            request.urlconf = settings.PUBLIC_SCHEMA_URLCONF
            set_urlconf(request.urlconf)
            return self.get_response(request)

        tenant = resolve_tenant(host)
        if tenant is None:
            return unknown_host_response(host)
        request.tenant = tenant  # also names the tenant in a suspended answer's log
        if tenant.is_suspended:
            return suspended_response(tenant.name)

        connection.set_tenant(tenant)
        # Wagtail reads it from here instead of querying for it
        # (tenants.registry.resolution)
        request._wagtail_site = tenant_site(request)
        request.urlconf = settings.ROOT_URLCONF
        set_urlconf(request.urlconf)
        try:
            if self.one_transaction_per_request:
                with transaction.atomic():
                    return self.get_response(request)
            return self.get_response(request)
        finally:
            connection.set_schema_to_public()
