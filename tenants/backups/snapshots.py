"""Taking, listing and pruning backups of a tenant.

A backup is the tenant's archive in the existing export format
(``tenants.provisioning.portability``: every table's rows and the media, from one
consistent snapshot), written to a local temporary file, then copied to the backup
storage with its SHA-256 recorded. The ``Backup`` row is written first (``queued``)
so that a scheduled backup is visible, and never taken twice, before a worker
starts it.
"""

import datetime as dt
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from tenants.audit.trail import Actor, record_audit
from tenants.backups.models import Backup, Restore
from tenants.backups.storage import delete_archive, store_archive
from tenants.errors import TenantError
from tenants.models import Tenant
from tenants.provisioning.portability import tenant_export
from tenants.registry.selectors import tenant_get
from tenants.tariffs.features import FEATURES, tenant_feature

logger = logging.getLogger(__name__)


class BackupNotFound(TenantError):
    pass


class BackupNotUsable(TenantError):
    pass


def backup_get(*, backup_id: int | str, slug: str | None = None) -> Backup:
    """The backup ``backup_id``; with ``slug``, it must be that tenant's."""
    try:
        backup = Backup.objects.get(pk=int(backup_id))
    except (Backup.DoesNotExist, ValueError, TypeError):
        raise BackupNotFound(f"No backup with the id {backup_id!r}.") from None
    if slug is not None and backup.tenant_schema != slug:
        raise BackupNotUsable(
            f"Backup {backup.pk} is a backup of {backup.tenant_schema!r}, not of "
            f"{slug!r}: a tenant is only restored from its own backups."
        )
    return backup


def backups_list(*, slug: str) -> list[Backup]:
    """The tenant's backups, oldest first (its slug must exist)."""
    tenant_get(slug)
    return list(Backup.objects.filter(tenant_schema=slug).order_by("created_at", "id"))


def backup_queue(*, slug: str, kind: str) -> Backup:
    """Record a backup to be taken (the worker that runs it calls ``backup_run``)."""
    return Backup.objects.create(tenant_schema=slug, kind=kind)


def backup_take(*, slug: str, actor: Actor | None = None) -> Backup:
    """Take an on-demand backup now, in this process."""
    tenant_get(slug)
    backup = backup_queue(slug=slug, kind=Backup.Kind.MANUAL)
    return backup_run(backup_id=backup.pk, actor=actor)


def backup_run(*, backup_id: int, actor: Actor | None = None) -> Backup:
    """Write the archive of a queued backup and record its checksum. Idempotent: a
    backup already finished is returned as it is (a job run twice after a lost
    lease takes one archive)."""
    with transaction.atomic():
        backup = Backup.objects.select_for_update().get(pk=backup_id)
        if backup.status in {Backup.Status.OK, Backup.Status.FAILED}:
            return backup
        backup.status = Backup.Status.RUNNING
        backup.save(update_fields=["status"])
    slug = backup.tenant_schema
    started = timezone.now()
    name = f"{slug}/{started:%Y%m%dT%H%M%SZ}-{backup.pk}.tar.gz"
    try:
        with tempfile.TemporaryDirectory(prefix=f"backup-{slug}-") as folder:
            local = Path(folder) / "archive.tar.gz"
            summary = tenant_export(slug=slug, output=local, audit=False)
            stored, checksum, size = store_archive(local_path=local, name=name)
    except Exception as exc:
        Backup.objects.filter(pk=backup.pk).update(
            status=Backup.Status.FAILED,
            error=str(exc)[:2000],
            finished_at=timezone.now(),
        )
        logger.exception("backup %s of %s failed", backup.pk, slug)
        if isinstance(exc, TenantError):
            raise
        raise BackupNotUsable(f"Backup of {slug!r} failed: {exc}") from exc
    with transaction.atomic():
        Backup.objects.filter(pk=backup.pk).update(
            status=Backup.Status.OK,
            storage_name=stored,
            sha256=checksum,
            size_bytes=size,
            rows=summary.rows,
            media_files=summary.media_files,
            finished_at=timezone.now(),
        )
        record_audit(
            action=f"backup.{backup.kind}",
            actor=actor or Actor.system("backups"),
            tenant=slug,
            target=f"backup {backup.pk}",
            after={"archive": stored, "sha256": checksum, "size_bytes": size},
        )
    backup.refresh_from_db()
    return backup


@dataclass(frozen=True)
class PruneResult:
    deleted: int
    kept: int


def _retention_days(slug: str) -> int:
    tenant = Tenant.objects.select_related("plan").filter(schema_name=slug).first()
    if tenant is None:  # a deleted tenant's backups age like the default plan's
        return FEATURES["backup_retention_days"].default
    return tenant_feature(tenant, "backup_retention_days")


def backups_prune(*, now: dt.datetime | None = None) -> PruneResult:
    """Delete archives older than their tenant's plan keeps them
    (``backup_retention_days``). The newest good backup of a tenant is always kept,
    and so is one a restore can still be undone from."""
    now = now or timezone.now()
    deleted = kept = 0
    protected = set(
        Restore.objects.filter(status=Restore.Status.SWAPPED).values_list(
            "backup_id", flat=True
        )
    )
    slugs = Backup.objects.values_list("tenant_schema", flat=True).distinct()
    for slug in slugs:
        cutoff = now - dt.timedelta(days=_retention_days(slug))
        newest_ok = (
            Backup.objects.filter(tenant_schema=slug, status=Backup.Status.OK)
            .order_by("-created_at", "-id")
            .values_list("pk", flat=True)
            .first()
        )
        old = Backup.objects.filter(
            tenant_schema=slug,
            created_at__lt=cutoff,
            status__in=[Backup.Status.OK, Backup.Status.FAILED],
        )
        for backup in old:
            if backup.pk == newest_ok or backup.pk in protected:
                kept += 1
                continue
            delete_archive(backup.storage_name)
            backup.delete()
            deleted += 1
    return PruneResult(deleted=deleted, kept=kept)


def backup_as_dict(backup: Backup) -> dict:
    return {
        "id": backup.pk,
        "tenant": backup.tenant_schema,
        "kind": backup.kind,
        "status": backup.status,
        "created_at": backup.created_at.isoformat(),
        "finished_at": backup.finished_at.isoformat() if backup.finished_at else None,
        "size_bytes": backup.size_bytes,
        "sha256": backup.sha256,
        "rows": backup.rows,
        "media_files": backup.media_files,
        "archive": backup.storage_name,
        "error": backup.error,
    }
