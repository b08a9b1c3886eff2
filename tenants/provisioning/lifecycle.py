"""Changing a live tenant: plan, domains, suspension.

Each write invalidates the host map so every worker sees it within a second."""

from django.db import transaction
from django_tenants.utils import schema_context

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


def tenant_add_domain(*, slug: str, host: str) -> Domain:
    tenant = tenant_get(slug)
    domain = normalize_tenant_domain(host)
    if Domain.objects.filter(domain=domain).exists():
        raise DomainTaken(f"The domain {domain!r} already belongs to a tenant.")
    created = Domain.objects.create(domain=domain, tenant=tenant, is_primary=False)
    invalidate_tenant_map()
    return created


def tenant_remove_domain(*, slug: str, host: str) -> None:
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
    with transaction.atomic():
        was_primary = domain.is_primary
        domain.delete()
        if was_primary:
            promoted = remaining.first()
            Domain.objects.filter(pk=promoted.pk).update(is_primary=True)
            _sync_site_hostname(tenant, promoted.domain)
    invalidate_tenant_map()
