"""Creating and deleting tenants.

A new tenant is a clone of a migrated template schema (``settings.CMS_TEMPLATE_SCHEMA``)
plus its tenant-specific rows: running every Wagtail migration per signup takes seconds,
cloning takes a fraction of that. The template is an ordinary Tenant row with the
``template`` status, so ``manage.py migrate`` keeps it current like every tenant, and
``ensure_template_schema`` brings it up to date before any clone.

Everything a creation writes happens in one transaction (PostgreSQL DDL is
transactional), so a failure at any step leaves no schema, row or domain behind.
"""

import functools
import logging
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader
from django_tenants.utils import quote_schema_name, schema_context, schema_exists

from tenants.audit.trail import Actor, record_audit
from tenants.errors import (
    ConfirmationRequired,
    DomainTaken,
    ProvisioningFailed,
    TenantExists,
    TenantNotFound,
)
from tenants.jobs import fair_queue
from tenants.jobs.lanes import all_lanes
from tenants.media import trees
from tenants.models import Domain, Plan, Tenant
from tenants.pods import claims, directory
from tenants.provisioning.cloning import clone_template
from tenants.redis_store.keys import cache_redis, tenant_key_pattern
from tenants.registry.resolution import invalidate_tenant_map
from tenants.registry.selectors import plan_get
from tenants.registry.validation import (
    normalize_tenant_domain,
    refuse_nul,
    validate_slug,
)
from tenants.request_path.page_cache import announce_new_generation

logger = logging.getLogger(__name__)

DEFAULT_ADMIN_USERNAME = "admin"


@dataclass(frozen=True)
class ProvisionedTenant:
    tenant: Tenant
    admin_username: str
    admin_password: str
    generated_password: bool
    url: str


def template_schema_name() -> str:
    return settings.CMS_TEMPLATE_SCHEMA


def tenant_url(domain: str) -> str:
    """The URL visitors use for a domain, with the port when it is not the default."""
    scheme = settings.CMS_SITE_SCHEME
    port = settings.CMS_SITE_PORT
    default_port = 443 if scheme == "https" else 80
    suffix = "" if port == default_port else f":{port}"
    return f"{scheme}://{domain}{suffix}/"


@functools.cache
def _latest_migrations() -> frozenset[tuple[str, str]]:
    """The newest migration of every app, as the code on disk has it (read once per
    process: loading the migration graph is the slow part of a check)."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return frozenset(loader.graph.leaf_nodes())


def has_pending_migrations(schema_name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT app, name FROM {quote_schema_name(schema_name)}.django_migrations"
        )
        applied = set(cursor.fetchall())
    return not _latest_migrations() <= applied


def _prepare_template() -> None:
    """Strip what Wagtail's migrations seed (welcome page, localhost Site) from the
    template so that no clone inherits it."""
    from wagtail.models import Page, Site

    with schema_context(template_schema_name()):
        Site.objects.all().delete()
        for page in Page.objects.filter(depth=2):
            page.delete()


def ensure_template_schema(*, verbosity: int = 0) -> bool:
    """Create or migrate the template schema; return True when it had to change."""
    name = template_schema_name()
    template = Tenant.objects.filter(schema_name=name).first()
    if template is None:
        plan = Plan.objects.order_by("public_reads_per_minute").first()
        if plan is None:
            raise ProvisioningFailed("No plan exists: run `manage.py migrate` first.")
        template = Tenant.objects.create(
            schema_name=name,
            name="Template for new tenants",
            plan=plan,
            status=Tenant.Status.TEMPLATE,
        )
    if not schema_exists(name):
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA {quote_schema_name(name)}")
    elif not has_pending_migrations(name):
        return False
    call_command(
        "migrate_schemas",
        schema_name=name,
        tenant=True,
        interactive=False,
        verbosity=verbosity,
    )
    _prepare_template()
    connection.set_schema_to_public()
    return True


# The unsaved home page of a new tenant's site. Content registers it at start-up
# (``register_home_page``): the platform knows that a site has a home page, not
# which page type it is.
_home_page_factory: Callable[[Tenant], object] | None = None


def register_home_page(factory: Callable[[Tenant], object]) -> None:
    global _home_page_factory
    _home_page_factory = factory


def _create_site_and_home(tenant: Tenant, primary_domain: str) -> None:
    from wagtail.models import Page, Site

    if _home_page_factory is None:
        raise ImproperlyConfigured(
            "No home page type registered (tenants.provisioning.creation."
            "register_home_page): is the content app installed?"
        )
    root = Page.get_first_root_node()
    home = _home_page_factory(tenant)
    root.add_child(instance=home)
    home.save_revision().publish()
    Site.objects.create(
        hostname=primary_domain,
        port=settings.CMS_SITE_PORT,
        site_name=tenant.name,
        root_page=home,
        is_default_site=True,
    )


def _create_admin(email: str, password_hash: str) -> str:
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    user_model.objects.create(
        username=DEFAULT_ADMIN_USERNAME,
        email=user_model.objects.normalize_email(email),
        password=password_hash,
        is_staff=True,
        is_superuser=True,
    )
    return DEFAULT_ADMIN_USERNAME


def validate_new_tenant(
    *,
    slug: str,
    name: str,
    domains: list[str],
    plan: str,
    admin_email: str | None = None,
) -> tuple[list[str], Plan]:
    """Check everything about a tenant-to-be before anything is written; return the
    normalized host names (primary first) and the plan."""
    validate_slug(slug)
    for label, value in (("name", name), ("plan", plan), ("admin e-mail", admin_email)):
        refuse_nul(label, value)
    if not name.strip():
        raise ProvisioningFailed("A tenant needs a non-empty --name.")
    if not domains:
        raise ProvisioningFailed("A tenant needs at least one --domain.")
    hosts: list[str] = []
    for host in domains:
        domain = normalize_tenant_domain(host)
        if domain in hosts:
            raise DomainTaken(f"The domain {domain!r} is given twice.")
        hosts.append(domain)
    plan_obj = plan_get(plan)
    if Tenant.objects.filter(schema_name=slug).exists() or schema_exists(
        slug, case_sensitive=False
    ):
        raise TenantExists(f"A tenant with the slug {slug!r} already exists.")
    taken = list(
        Domain.objects.filter(domain__in=hosts).values_list("domain", flat=True)
    )
    if taken:
        raise DomainTaken(f"The domain {taken[0]!r} already belongs to a tenant.")
    if directory.enabled():
        directory.check_new_tenant(slug, hosts, directory.local_pod())
    return hosts, plan_obj


def tenant_create(
    *,
    slug: str,
    name: str,
    domains: list[str],
    plan: str,
    admin_email: str | None = None,
    admin_password: str | None = None,
    actor: Actor | None = None,
) -> ProvisionedTenant:
    """Provision a tenant: schema cloned from the template, domains, Site, home page and
    an admin user. All or nothing."""
    hosts, plan_obj = validate_new_tenant(
        slug=slug, name=name, domains=domains, plan=plan, admin_email=admin_email
    )
    ensure_template_schema()
    password = admin_password or secrets.token_urlsafe(12)
    email = admin_email or f"admin@{hosts[0]}"
    # Hashing a password takes a CPU-bound fraction of a second; hashlib releases the
    # GIL, so it runs beside the clone, which is PostgreSQL's work.
    with ThreadPoolExecutor(max_workers=1) as hasher:
        password_hash = hasher.submit(make_password, password)
        try:
            with claims.released_on_failure(slug), transaction.atomic():
                tenant = Tenant.objects.create(
                    schema_name=slug, name=name.strip(), plan=plan_obj
                )
                for index, host in enumerate(hosts):
                    Domain.objects.create(
                        domain=host, tenant=tenant, is_primary=index == 0
                    )
                clone_template(slug)
                with schema_context(slug):
                    _create_site_and_home(tenant, hosts[0])
                    username = _create_admin(email, password_hash.result())
                record_audit(
                    action="tenant.created",
                    actor=actor,
                    tenant=slug,
                    target=f"tenant {slug}",
                    after={"name": tenant.name, "plan": plan, "domains": hosts},
                )
        except Exception as exc:
            connection.set_schema_to_public()
            logger.exception("provisioning of tenant %s failed", slug)
            raise ProvisioningFailed(
                f"Creating tenant {slug!r} failed and was rolled back: {exc}"
            ) from exc
    invalidate_tenant_map()
    _retire_aged_connection()
    return ProvisionedTenant(
        tenant=tenant,
        admin_username=username,
        admin_password=password,
        generated_password=admin_password is None,
        url=tenant_url(hosts[0]),
    )


_creations = {"connection": None, "count": 0}


def _retire_aged_connection() -> None:
    """Close the database connection after ``CMS_PROVISIONING_CONNECTION_CREATIONS``
    creations on it: a PostgreSQL backend keeps the catalog entries of every schema it
    cloned, and each creation on it gets slower (measured: 0.35 s for the first, 0.62 s
    after 120 on one connection, 0.44 s again on a fresh one; docs/benchmarks.md).
    Bulk creation (a CSV of 1,000 tenants) thus stays at the pace of the first ones.
    Never inside a transaction: the caller's work would be lost."""
    limit = int(getattr(settings, "CMS_PROVISIONING_CONNECTION_CREATIONS", 0) or 0)
    if limit <= 0 or connection.in_atomic_block:
        return
    current = id(connection.connection)
    if _creations["connection"] != current:
        _creations.update(connection=current, count=0)
    _creations["count"] += 1
    if _creations["count"] >= limit:
        connection.close()
        _creations.update(connection=None, count=0)


def purge_tenant_cache(schema_name: str, client=None) -> None:
    """Drop the tenant's keys - Django's cache (its key function starts with the
    schema) and the platform's own (slots, page cache): a later tenant with the same
    slug starts clean. ``client``: another pod's Redis (a move's source)."""
    client = client or cache_redis()
    for pattern in (f"{schema_name}:*", tenant_key_pattern(schema_name)):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    # and the pages workers keep in memory (tenants.request_path.local_hits)
    announce_new_generation(schema_name, client)


def tenant_delete(*, slug: str, confirm: bool, actor: Actor | None = None) -> None:
    """Drop the tenant's schema, rows, media and cache keys."""
    if not confirm:
        raise ConfirmationRequired(
            f"Deleting {slug!r} drops its schema and media for good: pass --yes."
        )
    tenant = (
        Tenant.objects.filter(schema_name=slug)
        .exclude(status=Tenant.Status.TEMPLATE)
        .first()
    )
    if tenant is None:
        raise TenantNotFound(f"No tenant with the slug {slug!r}.")
    with transaction.atomic():
        Domain.objects.filter(tenant=tenant).delete()
        with connection.cursor() as cursor:
            # Fire deferred foreign-key checks now: a schema written earlier in the
            # same transaction cannot be dropped with trigger events pending.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"DROP SCHEMA IF EXISTS {quote_schema_name(slug)} CASCADE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        Tenant.objects.filter(pk=tenant.pk).delete()
        record_audit(
            action="tenant.deleted",
            actor=actor,
            tenant=slug,
            target=f"tenant {slug}",
            before={"name": tenant.name, "plan": tenant.plan.name},
        )
    invalidate_tenant_map()
    trees.delete_tree(trees.tree(slug))
    try:
        purge_tenant_cache(slug)
        for lane in all_lanes():  # its jobs' references, which nothing would run
            fair_queue.clear(schema=slug, queue=lane.queue())
    except Exception:
        logger.exception("could not purge the keys of deleted tenant %s", slug)
