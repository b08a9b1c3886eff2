"""Tenant, Domain and Plan: public-schema rows; each tenant owns a PostgreSQL schema."""

from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

# Limit dimensions a Plan carries. The names are relied on by tools and commands.
LIMIT_FIELDS = (
    "public_reads_per_minute",
    "public_reads_per_client_per_minute",
    "api_reads_per_minute",
    "api_writes_per_minute",
    "publish_jobs_per_hour",
    "publish_concurrency",
    "concurrent_requests",
    "max_pages",
    "max_users",
    "storage_mb",
    "max_upload_mb",
)


class Plan(models.Model):
    """A tariff: data, not code, so operators change limits without a deploy."""

    name = models.SlugField(max_length=40, unique=True)
    title = models.CharField(max_length=100)
    public_reads_per_minute = models.PositiveIntegerField()
    # one client's share of the tenant's reads, so that one visitor (or bot) flooding
    # a site leaves its other visitors served
    public_reads_per_client_per_minute = models.PositiveIntegerField(default=120)
    api_reads_per_minute = models.PositiveIntegerField()
    api_writes_per_minute = models.PositiveIntegerField()
    publish_jobs_per_hour = models.PositiveIntegerField()
    # background jobs of one tenant running at once across the whole worker pool
    # (tenants.jobs.fair_queue); further jobs wait while other tenants' jobs run
    publish_concurrency = models.PositiveIntegerField(default=2)
    concurrent_requests = models.PositiveIntegerField()
    max_pages = models.PositiveIntegerField()
    max_users = models.PositiveIntegerField()
    storage_mb = models.PositiveIntegerField()
    # one uploaded file (image or document); the site-wide ceiling is
    # CMS_MAX_UPLOAD_MB, enforced by Wagtail before the plan is asked
    max_upload_mb = models.PositiveIntegerField(default=10)
    # Feature switches and counts the operator set (tenants.tariffs.features declares
    # them with their defaults); read through plan_feature, never directly.
    features = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["public_reads_per_minute", "name"]

    def __str__(self) -> str:
        return self.name

    def limits(self) -> dict[str, int]:
        return {field: getattr(self, field) for field in LIMIT_FIELDS}


class Tenant(TenantMixin):
    """A customer's site. ``schema_name`` is the tenant's slug.

    The ``template`` status marks the migrated schema new tenants are cloned from: it is
    migrated with everyone else by ``manage.py migrate`` but has no domain and is never
    listed or served.
    """

    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"
        TEMPLATE = "template"

    name = models.CharField(max_length=200)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="tenants")
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.ACTIVE
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The slug of the tenant this one is a staging copy of (``tenants clone``): its
    # admin shows a banner and its pages tell search engines not to index them.
    staging_of = models.CharField(max_length=63, blank=True, default="")
    # Set while a restore replaces the tenant's data: writes are refused with
    # Retry-After (tenants.backups.freeze); read from the host map, so free per request.
    writes_frozen_until = models.DateTimeField(null=True, blank=True)
    # Strict-Transport-Security on the tenant's hosts, once its admins opt in and its
    # plan includes the ``hsts`` switch (tenants.domains.policy).
    hsts_enabled = models.BooleanField(default=False)

    # Provisioning creates and drops schemas explicitly (tenants.provisioning.creation).
    auto_create_schema = False
    auto_drop_schema = False

    class Meta:
        ordering = ["schema_name"]

    def __str__(self) -> str:
        return self.schema_name

    @property
    def slug(self) -> str:
        return self.schema_name

    @property
    def is_suspended(self) -> bool:
        return self.status == self.Status.SUSPENDED


class Domain(DomainMixin):
    """A host name served by one tenant; exactly one per tenant is primary.

    A domain is served only once ``verified``. Domains the operator gives (at creation,
    or subdomains of the platform's base domain) are verified by construction; a
    custom domain a tenant adds starts ``pending`` until its owner proves control
    (tenants.domains.ownership), and becomes ``failed`` when the background retries
    give up (a later check may still verify it).
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        VERIFIED = "verified"
        FAILED = "failed"

    class Method(models.TextChoices):
        DNS = "dns", "DNS TXT record"
        HTTP = "http", "HTTP token"

    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.VERIFIED
    )
    verification_token = models.CharField(max_length=64, blank=True, default="")
    verification_method = models.CharField(
        max_length=10, choices=Method.choices, default=Method.DNS
    )
    checked_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(null=True, auto_now_add=True)

    class Meta:
        ordering = ["domain"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(is_primary=True),
                name="one_primary_domain_per_tenant",
            )
        ]

    def __str__(self) -> str:
        return self.domain

    @property
    def is_verified(self) -> bool:
        return self.status == self.Status.VERIFIED


class UsageDay(models.Model):
    """One tenant's metered use on one day (UTC), for tariff billing and the usage
    views. Request counts are added by ``tenants.metering.flush.flush_usage`` from
    counters kept in Redis; storage, pages and users are the last snapshot of that
    day."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="usage")
    day = models.DateField()
    public_reads = models.BigIntegerField(default=0)
    api_reads = models.BigIntegerField(default=0)
    api_writes = models.BigIntegerField(default=0)
    publish_jobs = models.BigIntegerField(default=0)
    rejected_429 = models.BigIntegerField(default=0)
    rejected_503 = models.BigIntegerField(default=0)
    storage_bytes = models.BigIntegerField(default=0)
    pages = models.IntegerField(default=0)
    users = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "day"], name="usage_day_unique")
        ]
        ordering = ["tenant", "day"]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.day}"


class UsageFlush(models.Model):
    """A flushed batch of counters, recorded in the same transaction as its sums, so
    a flush that dies after committing is never added a second time."""

    batch = models.CharField(max_length=64, unique=True)
    flushed_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.batch


# Models of sub-packages that live in the public schema (same app, own modules).
from tenants.audit.models import AuditEntry  # noqa: E402, F401
from tenants.backups.models import Backup, DataExport, Restore  # noqa: E402, F401
