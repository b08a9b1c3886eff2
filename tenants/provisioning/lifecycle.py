"""Changing a live tenant: plan, domains, suspension.

Each write invalidates the host map so every worker sees it within a second, and is
recorded in the audit trail with its actor in the same transaction."""

from django.db import transaction
from django_tenants.utils import schema_context

from tenants.audit.trail import Actor, record_audit
from tenants.errors import DomainNotFound, DomainTaken, TenantError
from tenants.models import Domain, Tenant
from tenants.registry.resolution import invalidate_tenant_map
from tenants.registry.selectors import plan_get, tenant_get
from tenants.registry.validation import normalize_domain, normalize_tenant_domain


def _sync_site_hostname(tenant: Tenant, hostname: str) -> None:
    """Keep the tenant's Wagtail Site on its primary domain (full URLs, sitemaps)."""
    from wagtail.models import Site

    with schema_context(tenant.schema_name):
        Site.objects.filter(is_default_site=True).update(hostname=hostname)


def _domains(tenant: Tenant) -> list[str]:
    return list(
        Domain.objects.filter(tenant=tenant)
        .order_by("-is_primary", "domain")
        .values_list("domain", flat=True)
    )


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


def tenant_add_domain(*, slug: str, host: str, actor: Actor | None = None) -> Domain:
    tenant = tenant_get(slug)
    domain = normalize_tenant_domain(host)
    if Domain.objects.filter(domain=domain).exists():
        raise DomainTaken(f"The domain {domain!r} already belongs to a tenant.")
    before = _domains(tenant)
    with transaction.atomic():
        created = Domain.objects.create(domain=domain, tenant=tenant, is_primary=False)
        record_audit(
            action="domain.added",
            actor=actor,
            tenant=tenant.slug,
            target=f"domain {domain}",
            before={"domains": before},
            after={"domains": _domains(tenant)},
        )
    invalidate_tenant_map()
    return created


def tenant_remove_domain(*, slug: str, host: str, actor: Actor | None = None) -> None:
    """Remove a domain; removing the primary promotes the oldest remaining one."""
    tenant = tenant_get(slug)
    domain_name = normalize_domain(host)
    domain = Domain.objects.filter(tenant=tenant, domain=domain_name).first()
    if domain is None:
        raise DomainNotFound(f"{domain_name!r} is not a domain of {slug!r}.")
    remaining = (
        Domain.objects.filter(tenant=tenant).exclude(pk=domain.pk).order_by("pk")
    )
    if not remaining.exists():
        raise TenantError(
            f"{domain_name!r} is the only domain of {slug!r}: add another one first."
        )
    before = _domains(tenant)
    with transaction.atomic():
        was_primary = domain.is_primary
        domain.delete()
        if was_primary:
            promoted = remaining.first()
            Domain.objects.filter(pk=promoted.pk).update(is_primary=True)
            _sync_site_hostname(tenant, promoted.domain)
        record_audit(
            action="domain.removed",
            actor=actor,
            tenant=tenant.slug,
            target=f"domain {domain_name}",
            before={"domains": before},
            after={"domains": _domains(tenant)},
        )
    invalidate_tenant_map()
