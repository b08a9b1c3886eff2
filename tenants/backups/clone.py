"""Staging copies: a full, independent copy of a tenant (content, users, media) under
a new slug and domain, for trying changes without touching the live site.

The copy is an export and an import in the existing archive format, so it shares
nothing with its original: its own schema, media folder and cache keys. It is marked
(``Tenant.staging_of``): its admin shows a banner and every answer carries
``X-Robots-Tag: noindex`` (pages also get a robots meta tag from the base template),
so search engines never index a copy of a live site.
"""

import tempfile
from pathlib import Path

from django.http import HttpRequest, HttpResponse

from tenants.audit.trail import Actor
from tenants.errors import TenantExists
from tenants.models import Tenant
from tenants.provisioning.portability import tenant_export, tenant_import
from tenants.registry.selectors import tenant_get
from tenants.registry.validation import validate_slug

NOINDEX = "noindex, nofollow"


def tenant_clone(
    *,
    slug: str,
    to: str,
    domains: list[str],
    plan: str | None = None,
    actor: Actor | None = None,
) -> Tenant:
    """Copy tenant ``slug`` as the staging tenant ``to`` served at ``domains``. All
    or nothing: a failed import leaves no schema, row or folder behind."""
    tenant_get(slug)
    validate_slug(to)
    if Tenant.objects.filter(schema_name=to).exists():
        raise TenantExists(f"A tenant with the slug {to!r} already exists.")
    with tempfile.TemporaryDirectory(prefix=f"clone-{slug}-") as folder:
        archive = Path(folder) / f"{slug}.tar.gz"
        tenant_export(slug=slug, output=archive, actor=actor, audit=False)
        return tenant_import(
            archive_path=archive,
            slug=to,
            domains=domains,
            plan=plan,
            actor=actor,
            staging_of=slug,
        )


def is_staging_copy(tenant: Tenant | None) -> bool:
    return bool(getattr(tenant, "staging_of", ""))


class StagingCopyMiddleware:
    """``X-Robots-Tag: noindex`` on every answer of a staging copy. Placed before the
    page cache so that cached pages get it too; reads the resolved tenant only."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if is_staging_copy(getattr(request, "tenant", None)):
            response["X-Robots-Tag"] = NOINDEX
        return response
