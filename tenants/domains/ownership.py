"""A tenant's domains: add, prove ownership, remove, make primary, HSTS opt-in.

One place for the rules, called by the tenant's admin page, the operator's CLI and
the background retry task alike:

- a custom domain starts ``pending`` with its own random token and is served (and
  gets a certificate) only once ``verified``; subdomains of the platform's base
  domain, which only the operator hands out, are verified by construction;
- a name claimed by another tenant, or the operator's own, can never be added; a
  refused name changes nothing;
- the plan's ``custom_domains`` count bounds growth (a downgrade keeps what exists);
- the primary domain is the canonical host: the tenant's Wagtail Site follows it, so
  generated URLs (sitemap, API, links in emails) use it.

Every write bumps the host map's generation (tenants.registry.resolution), so every
process serves, redirects and answers Caddy's ``ask`` from the new state within a
second.
"""

import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from tenants.audit.trail import Actor, record_audit
from tenants.domains.proof import (
    challenge_record_name,
    challenge_url,
    check_dns_token,
    check_http_token,
)
from tenants.errors import (
    DomainNotFound,
    DomainTaken,
    DomainVerificationFailed,
    InvalidDomain,
    TenantError,
)
from tenants.models import Domain, Tenant
from tenants.registry.resolution import invalidate_tenant_map
from tenants.registry.validation import (
    is_platform_domain,
    normalize_custom_domain,
    normalize_domain,
)
from tenants.tariffs.features import check_feature_count, check_feature_enabled


def _audit(
    action: str,
    domain: Domain,
    actor: Actor | None,
    *,
    before: dict | None = None,
    after: dict | None = None,
) -> None:
    """Domain changes are security-relevant: who claimed or released which name."""
    record_audit(
        action=action,
        actor=actor,
        tenant=domain.tenant.slug,
        target=f"domain {domain.domain}",
        before=before,
        after=after,
    )


def _domain_names(tenant: Tenant) -> list[str]:
    """The tenant's host names, primary first (for the audit trail's before/after)."""
    return list(
        Domain.objects.filter(tenant=tenant)
        .order_by("-is_primary", "domain")
        .values_list("domain", flat=True)
    )


def tenant_domains(tenant: Tenant) -> list[Domain]:
    """The tenant's domains, primary first, then by name."""
    domains = Domain.objects.filter(tenant=tenant)
    return sorted(domains, key=lambda d: (not d.is_primary, d.domain))


def custom_domain_count(tenant: Tenant) -> int:
    """Domains that count against the plan: every one outside the platform's."""
    names = Domain.objects.filter(tenant=tenant).values_list("domain", flat=True)
    return sum(1 for name in names if not is_platform_domain(name))


def domain_get(*, tenant: Tenant, host: str) -> Domain:
    try:
        name = normalize_domain(host)
    except InvalidDomain:
        name = host
    domain = Domain.objects.filter(tenant=tenant, domain=name).first()
    if domain is None:
        raise DomainNotFound(f"{name!r} is not a domain of {tenant.slug!r}.")
    return domain


def domain_add(
    *,
    tenant: Tenant,
    host: str,
    method: str = Domain.Method.DNS,
    by_operator: bool = False,
    actor: Actor | None = None,
) -> Domain:
    """Claim ``host`` for ``tenant``: pending with a fresh token (verified at once
    for a platform subdomain the operator adds). Raises a ``TenantError`` saying why
    when the name or the plan refuses it; nothing is written then."""
    name = normalize_custom_domain(host, by_operator=by_operator)
    if method not in Domain.Method.values:
        raise InvalidDomain(
            f"Unknown verification method {method!r}: use "
            f"{' or '.join(Domain.Method.values)}."
        )
    existing = Domain.objects.filter(domain=name).select_related("tenant").first()
    if existing is not None:
        if existing.tenant_id == tenant.pk:
            raise DomainTaken(f"{name!r} is already one of {tenant.slug!r}'s domains.")
        raise DomainTaken(f"The domain {name!r} is already claimed by another site.")
    platform = is_platform_domain(name)
    if not platform:
        check_feature_count(
            tenant, "custom_domains", current=custom_domain_count(tenant)
        )
    before = _domain_names(tenant)
    try:
        with transaction.atomic():
            domain = Domain.objects.create(
                domain=name,
                tenant=tenant,
                is_primary=False,
                status=Domain.Status.VERIFIED if platform else Domain.Status.PENDING,
                verification_method=method,
                verification_token="" if platform else secrets.token_hex(16),
                verified_at=timezone.now() if platform else None,
            )
            _audit(
                "domain.added",
                domain,
                actor,
                before={"domains": before},
                after={"domains": _domain_names(tenant), "status": domain.status},
            )
    except IntegrityError:
        raise DomainTaken(
            f"The domain {name!r} is already claimed by another site."
        ) from None
    invalidate_tenant_map()
    return domain


def domain_verify(*, domain: Domain) -> Domain:
    """Look for the domain's proof now and record what was found.

    Verified: the domain serves from now on. Not found: ``last_error`` says what
    the lookup saw and ``DomainVerificationFailed`` is raised (the status stays as it
    was; the background task marks it failed when it gives up)."""
    if domain.is_verified:
        return domain
    check = (
        check_http_token
        if domain.verification_method == Domain.Method.HTTP
        else check_dns_token
    )
    now = timezone.now()
    try:
        check(domain.domain, domain.verification_token)
    except DomainVerificationFailed as exc:
        Domain.objects.filter(pk=domain.pk).update(
            checked_at=now, last_error=str(exc)[:500]
        )
        domain.checked_at, domain.last_error = now, str(exc)[:500]
        raise
    domain.status = Domain.Status.VERIFIED
    domain.checked_at = domain.verified_at = now
    domain.last_error = ""
    with transaction.atomic():
        domain.save(update_fields=["status", "checked_at", "verified_at", "last_error"])
        _audit("domain.verified", domain, None, after={"status": domain.status})
    invalidate_tenant_map()
    return domain


def domain_mark_failed(*, domain: Domain) -> None:
    """The background retries gave up: shown as failed; a check may still verify."""
    Domain.objects.filter(pk=domain.pk, status=Domain.Status.PENDING).update(
        status=Domain.Status.FAILED
    )


def domain_remove(*, tenant: Tenant, host: str, actor: Actor | None = None) -> None:
    """Remove a domain and free its name; removing the primary promotes the oldest
    remaining verified domain. The last verified domain cannot be removed."""
    domain = domain_get(tenant=tenant, host=host)
    remaining = (
        Domain.objects.filter(tenant=tenant, status=Domain.Status.VERIFIED)
        .exclude(pk=domain.pk)
        .order_by("pk")
    )
    if domain.is_verified and not remaining.exists():
        raise TenantError(
            f"{domain.domain!r} is the only domain of {tenant.slug!r}: "
            "add another one first."
        )
    with transaction.atomic():
        was_primary = domain.is_primary
        before = _domain_names(tenant)
        domain.delete()
        if was_primary:
            promoted = remaining.first()
            Domain.objects.filter(pk=promoted.pk).update(is_primary=True)
            sync_site_to_primary(tenant, promoted.domain)
        _audit(
            "domain.removed",
            domain,
            actor,
            before={"domains": before},
            after={"domains": _domain_names(tenant)},
        )
    invalidate_tenant_map()


def domain_make_primary(
    *, tenant: Tenant, host: str, actor: Actor | None = None
) -> Domain:
    """Make a verified domain the canonical one: the others redirect to it."""
    domain = domain_get(tenant=tenant, host=host)
    if not domain.is_verified:
        raise TenantError(
            f"{domain.domain!r} is not verified yet: verify it before making it "
            "primary."
        )
    if domain.is_primary:
        return domain
    with transaction.atomic():
        before = _domain_names(tenant)
        Domain.objects.filter(tenant=tenant, is_primary=True).update(is_primary=False)
        Domain.objects.filter(pk=domain.pk).update(is_primary=True)
        sync_site_to_primary(tenant, domain.domain)
        _audit(
            "domain.made_primary",
            domain,
            actor,
            before={"domains": before},
            after={"domains": _domain_names(tenant)},
        )
    domain.is_primary = True
    invalidate_tenant_map()
    return domain


def tenant_set_hsts(
    *, tenant: Tenant, enabled: bool, actor: Actor | None = None
) -> Tenant:
    """Opt in or out of HSTS; opting in needs the plan's ``hsts`` switch."""
    if enabled:
        check_feature_enabled(tenant, "hsts")
    with transaction.atomic():
        before = Tenant.objects.get(pk=tenant.pk).hsts_enabled
        Tenant.objects.filter(pk=tenant.pk).update(hsts_enabled=enabled)
        record_audit(
            action="tenant.hsts",
            actor=actor,
            tenant=tenant.slug,
            target=f"tenant {tenant.slug}",
            before={"hsts": before},
            after={"hsts": enabled},
        )
    tenant.hsts_enabled = enabled
    invalidate_tenant_map()
    return tenant


def primary_site_port(domain: str) -> int:
    """Port of the tenant's Wagtail Site for its primary domain: platform hosts use the
    configured site port, custom domains the TLS edge's (``CMS_CUSTOM_DOMAIN_PORT``)."""
    if is_platform_domain(domain):
        return settings.CMS_SITE_PORT
    return settings.CMS_CUSTOM_DOMAIN_PORT


def sync_site_to_primary(tenant: Tenant, hostname: str) -> None:
    """Keep the tenant's default Wagtail Site on its primary domain, so full URLs
    (sitemap, API ``html_url``, emails) name the canonical host."""
    from wagtail.models import Site

    with schema_context(tenant.schema_name):
        Site.objects.filter(is_default_site=True).update(
            hostname=hostname, port=primary_site_port(hostname)
        )


def ownership_instructions(domain: Domain) -> str:
    """What the domain's owner must publish, in one line."""
    if domain.verification_method == Domain.Method.HTTP:
        return (
            f"Serve the text {domain.verification_token} at "
            f"{challenge_url(domain.domain, domain.verification_token)} "
            "from the domain's current web server."
        )
    return (
        f"Publish a DNS TXT record {challenge_record_name(domain.domain)} "
        f"with the value {domain.verification_token}."
    )


def domain_as_dict(domain: Domain) -> dict:
    return {
        "domain": domain.domain,
        "primary": domain.is_primary,
        "status": domain.status,
        "method": domain.verification_method,
        "record_name": challenge_record_name(domain.domain),
        "token": domain.verification_token,
        "instructions": "" if domain.is_verified else ownership_instructions(domain),
        "checked_at": domain.checked_at.isoformat() if domain.checked_at else None,
        "last_error": domain.last_error,
    }
