"""Records of backups, in-place restores and tenants' own data exports (public
schema). The archives themselves live in the backup storage, not in the database."""

from django.db import models


class Backup(models.Model):
    """One archive of a tenant (``tenants.provisioning.portability`` format) in the
    backup storage, with the SHA-256 of its bytes taken when it was written. The slug
    is kept as text so a backup outlives its tenant (a deleted tenant can come back
    with ``tenants import``)."""

    class Kind(models.TextChoices):
        SCHEDULED = "scheduled"
        MANUAL = "manual"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        OK = "ok"
        FAILED = "failed"

    tenant_schema = models.CharField(max_length=63, db_index=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.QUEUED
    )
    storage_name = models.CharField(max_length=300, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    rows = models.BigIntegerField(default=0)
    media_files = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        app_label = "tenants"
        ordering = ["tenant_schema", "created_at", "id"]

    def __str__(self) -> str:
        return f"backup {self.pk} of {self.tenant_schema}"


class Restore(models.Model):
    """An in-place restore: which backup went live and where the state it replaced
    is kept (a schema and a media folder) until ``undo_until``."""

    class Status(models.TextChoices):
        SWAPPED = "swapped"
        UNDONE = "undone"
        EXPIRED = "expired"

    tenant_schema = models.CharField(max_length=63, db_index=True)
    backup = models.ForeignKey(
        Backup, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    previous_schema = models.CharField(max_length=63)
    previous_media = models.CharField(max_length=300, blank=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.SWAPPED
    )
    swapped_at = models.DateTimeField(auto_now_add=True)
    undo_until = models.DateTimeField()

    class Meta:
        app_label = "tenants"
        ordering = ["swapped_at", "id"]

    def __str__(self) -> str:
        return f"restore {self.pk} of {self.tenant_schema}"


class DataExport(models.Model):
    """A tenant's own download of its data, built in the background; the link to
    it is signed and expires (``tenants.backups.data_export``)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        READY = "ready"
        FAILED = "failed"

    tenant_schema = models.CharField(max_length=63, db_index=True)
    requested_by = models.CharField(max_length=150)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING
    )
    storage_name = models.CharField(max_length=300, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        app_label = "tenants"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"data export {self.pk} of {self.tenant_schema}"
