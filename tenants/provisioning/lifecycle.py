"""Changing a live tenant: plan and suspension (domains: tenants.domains.ownership).

Each write invalidates the host map so every worker sees it within a second (and a
plan change wakes the routers, whose edge limits follow the plan), and is
recorded in the audit trail with its actor in the same transaction; a suspended
tenant's domains also stop getting certificates (tenants.domains.tls_ask)."""

from django.db import transaction

from tenants.audit.trail import Actor, record_audit
from tenants.models import Tenant
from tenants.pods import plans
from tenants.registry.resolution import invalidate_tenant_map
from tenants.registry.selectors import plan_get, tenant_get


def tenant_set_plan(*, slug: str, plan: str, actor: Actor | None = None) -> Tenant:
    tenant = tenant_get(slug)
    before = tenant.plan.name
    with transaction.atomic():
        tenant.plan = plan_get(plan)
        tenant.save(update_fields=["plan"])
        record_audit(
            action="tenant.set_plan",
            actor=actor,
            tenant=tenant.slug,
            target=f"tenant {tenant.slug}",
            before={"plan": before},
            after={"plan": tenant.plan.name},
        )
    invalidate_tenant_map()
    plans.tell_routers(f"tenant {tenant.slug}'s plan")  # the edge limit follows
    return tenant


def tenant_set_status(*, slug: str, status: str, actor: Actor | None = None) -> Tenant:
    tenant = tenant_get(slug)
    before = tenant.status
    with transaction.atomic():
        tenant.status = status
        tenant.save(update_fields=["status"])
        record_audit(
            action=f"tenant.set_status.{status}",
            actor=actor,
            tenant=tenant.slug,
            target=f"tenant {tenant.slug}",
            before={"status": before},
            after={"status": status},
        )
    invalidate_tenant_map()
    return tenant
