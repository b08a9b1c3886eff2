"""Changing a live tenant: plan and suspension (domains: tenants.domains.ownership).

Each write invalidates the host map so every worker sees it within a second; a
suspended tenant's domains also stop getting certificates (tenants.domains.tls_ask)."""

from tenants.models import Tenant
from tenants.registry.resolution import invalidate_tenant_map
from tenants.registry.selectors import plan_get, tenant_get


def tenant_set_plan(*, slug: str, plan: str) -> Tenant:
    tenant = tenant_get(slug)
    tenant.plan = plan_get(plan)
    tenant.save(update_fields=["plan"])
    invalidate_tenant_map()
    return tenant


def tenant_set_status(*, slug: str, status: str) -> Tenant:
    tenant = tenant_get(slug)
    tenant.status = status
    tenant.save(update_fields=["status"])
    invalidate_tenant_map()
    return tenant
