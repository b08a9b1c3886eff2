"""The tenant gate: which schema and URLconf a request gets, or its early answer.

Host -> tenant (cached, tenants.registry.resolution), then: the operator's public
hosts get the public schema and URLconf; unknown hosts a 404 page; suspended tenants
a 503 page; everyone else runs in their own schema with the tenant URLconf. ``gate``
is the rule; the WSGI edge (tenants.request_path.edge) and ``TenantGateMiddleware``
both apply it.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import set_urlconf

from tenants.adapters.wagtail import attach_site
from tenants.models import Tenant
from tenants.registry.resolution import request_host, resolve_tenant, tenant_site
from tenants.request_state import request_state


class GateKind(Enum):
    PUBLIC = "public"  # the operator's own host
    UNKNOWN = "unknown"  # no tenant serves this host
    SUSPENDED = "suspended"
    TENANT = "tenant"


@dataclass(frozen=True)
class Gate:
    kind: GateKind
    host: str
    tenant: Tenant | None = None


@functools.cache
def _public_hosts(configured: tuple[str, ...]) -> frozenset[str]:
    return frozenset(host.lower() for host in configured)


def public_hosts() -> frozenset[str]:
    """The operator's hosts (``CMS_PUBLIC_HOSTS``), lower-case."""
    return _public_hosts(tuple(settings.CMS_PUBLIC_HOSTS))


def gate(host: str) -> Gate:
    """Where a request for ``host`` (lower-case, without port) belongs."""
    if host in public_hosts():
        return Gate(GateKind.PUBLIC, host)
    tenant = resolve_tenant(host)
    if tenant is None:
        return Gate(GateKind.UNKNOWN, host)
    if tenant.is_suspended:
        return Gate(GateKind.SUSPENDED, host, tenant)
    return Gate(GateKind.TENANT, host, tenant)


def unknown_host_response(host: str) -> HttpResponse:
    body = render_to_string("tenants/unknown_host.html", {"host": host})
    return HttpResponse(body, status=404)


def suspended_response(request: HttpRequest, tenant_name: str) -> HttpResponse:
    body = render_to_string("tenants/suspended.html", {"tenant_name": tenant_name})
    response = HttpResponse(body, status=503)
    response["Retry-After"] = "3600"
    request_state(request).rejection = "suspended"
    return response


class TenantGateMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        # behind a transaction-mode pooler, a tenant's queries must share the
        # transaction that set its schema (tenants.db_backend)
        self.one_transaction_per_request = settings.CMS_DB_TRANSACTION_POOLING

    def __call__(self, request: HttpRequest) -> HttpResponse:
        connection.set_schema_to_public()
        decided = gate(request_host(request))
        if decided.kind is GateKind.PUBLIC:
            request.tenant = None
            request.urlconf = settings.PUBLIC_SCHEMA_URLCONF
            set_urlconf(request.urlconf)
            return self.get_response(request)
        if decided.kind is GateKind.UNKNOWN:
            return unknown_host_response(decided.host)
        tenant = decided.tenant
        request.tenant = tenant  # also names the tenant in a suspended answer's log
        if decided.kind is GateKind.SUSPENDED:
            return suspended_response(request, tenant.name)

        connection.set_tenant(tenant)
        attach_site(request, tenant_site(request))
        request.urlconf = settings.ROOT_URLCONF
        set_urlconf(request.urlconf)
        try:
            if self.one_transaction_per_request:
                with transaction.atomic():
                    return self.get_response(request)
            return self.get_response(request)
        finally:
            connection.set_schema_to_public()
