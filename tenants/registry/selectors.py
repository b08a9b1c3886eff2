"""Reads of tenants and plans, shared by commands, views and services."""

from django.db.models import QuerySet

from tenants.errors import PlanNotFound, TenantNotFound
from tenants.models import Plan, Tenant
from tenants.tariffs.features import plan_features


def tenant_list() -> QuerySet[Tenant]:
    """Every real tenant (the template schema is not one)."""
    return (
        Tenant.objects.exclude(status=Tenant.Status.TEMPLATE)
        .select_related("plan")
        .prefetch_related("domains")
        .order_by("schema_name")
    )


def tenant_get(slug: str) -> Tenant:
    tenant = tenant_list().filter(schema_name=slug).first()
    if tenant is None:
        raise TenantNotFound(f"No tenant with the slug {slug!r}.")
    return tenant


def primary_domain(tenant: Tenant) -> str | None:
    for domain in tenant.domains.all():
        if domain.is_primary:
            return domain.domain
    return None


def tenant_as_dict(tenant: Tenant) -> dict:
    domains = sorted(tenant.domains.all(), key=lambda d: (not d.is_primary, d.domain))
    return {
        "slug": tenant.schema_name,
        "name": tenant.name,
        "plan": tenant.plan.name,
        "status": tenant.status,
        "created": tenant.created_at.isoformat(),
        "primary_domain": primary_domain(tenant),
        "domains": [d.domain for d in domains],
    }


def plan_list() -> QuerySet[Plan]:
    return Plan.objects.all()


def plan_get(name: str) -> Plan:
    plan = Plan.objects.filter(name=name).first()
    if plan is None:
        names = ", ".join(Plan.objects.values_list("name", flat=True))
        raise PlanNotFound(f"Unknown plan {name!r}. Known plans: {names}.")
    return plan


def plan_as_dict(plan: Plan) -> dict:
    return {
        "name": plan.name,
        "title": plan.title,
        "limits": plan.limits(),
        "features": plan_features(plan),
    }
