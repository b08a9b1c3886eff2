"""When each tenant's scheduled backup runs, and how it reaches a worker.

Schedule: a tenant whose plan has ``backups`` on is backed up every
``backup_every_hours``. Its slot within that period is offset by a hash of its slug,
so a fleet on the same plan spreads evenly over the period instead of starting all
at once (with 1,000 tenants on a 24-hour plan, about one every 86 s). Celery beat
calls ``schedule_due_backups`` every few minutes; a tenant is due when the start of
its current slot has passed and it has no backup (queued, running or good) since.

Dispatch: each due backup is a job on its own fair queue (``tenants.jobs.fair_queue``
under the name ``backups-<CMS_BACKUP_QUEUE>``): round robin across tenants, at most
one backup per tenant in flight. The fair queue has no priorities, so "low priority"
is a separate queue instead: the tokens travel on the Celery queue
``CMS_BACKUP_QUEUE``, which publishing workers do not consume. A backup therefore
never takes a publishing worker's slot, and the backup workers' concurrency is the
fleet-wide cap on simultaneous backups (docs/operations.md).
"""

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from tenants.backups.models import Backup
from tenants.backups.snapshots import backup_queue, backup_run
from tenants.jobs import fair_queue
from tenants.models import Tenant
from tenants.tariffs.features import tenant_feature

logger = logging.getLogger(__name__)


def backup_fair_queue() -> str:
    return f"backups-{settings.CMS_BACKUP_QUEUE}"


def slot_offset_seconds(slug: str, period_seconds: int) -> int:
    """Where in each period the tenant's backup starts: stable per slug, uniform
    over the fleet."""
    digest = hashlib.sha256(slug.encode()).digest()
    return int.from_bytes(digest[:8], "big") % max(1, period_seconds)


def current_slot_start(slug: str, every_hours: int, now: dt.datetime) -> dt.datetime:
    period = every_hours * 3600
    offset = slot_offset_seconds(slug, period)
    epoch = int(now.timestamp())
    start = ((epoch - offset) // period) * period + offset
    return dt.datetime.fromtimestamp(start, tz=dt.UTC)


def due_tenants(*, now: dt.datetime | None = None) -> list[Tenant]:
    """Active tenants whose current backup slot has started and has no backup."""
    now = now or timezone.now()
    due = []
    tenants = Tenant.objects.filter(status=Tenant.Status.ACTIVE).select_related("plan")
    for tenant in tenants:
        if not tenant_feature(tenant, "backups"):
            continue
        every = tenant_feature(tenant, "backup_every_hours")
        if every < 1:
            continue
        slot = current_slot_start(tenant.slug, every, now)
        taken = Backup.objects.filter(
            tenant_schema=tenant.slug,
            kind=Backup.Kind.SCHEDULED,
            created_at__gte=slot,
            status__in=[Backup.Status.QUEUED, Backup.Status.RUNNING, Backup.Status.OK],
        ).exists()
        if not taken:
            due.append(tenant)
    return due


@dataclass(frozen=True)
class ScheduleResult:
    queued: list[str]


def schedule_due_backups(*, now: dt.datetime | None = None) -> ScheduleResult:
    """Queue a scheduled backup for every due tenant (beat calls this)."""
    queued = []
    for tenant in due_tenants(now=now):
        backup = backup_queue(slug=tenant.slug, kind=Backup.Kind.SCHEDULED)
        fair_queue.push(
            schema=tenant.slug,
            job_refs=[str(backup.pk)],
            cap=1,
            queue=backup_fair_queue(),
        )
        send_backup_tokens(1)
        queued.append(tenant.slug)
    return ScheduleResult(queued=queued)


def send_backup_tokens(count: int, *, countdown: float | None = None) -> None:
    from cms_project.celery import app

    for _ in range(count):
        app.send_task(
            "tenants.run_next_backup",
            queue=settings.CMS_BACKUP_QUEUE,
            countdown=countdown,
            headers={"_schema_name": settings.PUBLIC_SCHEMA_NAME},
        )


def run_next_backup() -> dict:
    """Spend one token: take the next backup in fair order and run it."""
    queue = backup_fair_queue()
    claim = fair_queue.pop(queue=queue, lease=settings.CMS_BACKUP_LEASE_SECONDS)
    if claim.reclaimed:
        logger.warning("reclaimed %s backups whose worker died", claim.reclaimed)
        send_backup_tokens(claim.reclaimed)
    if claim.schema is None:
        if claim.capped or claim.next_lease_expiry is not None:
            send_backup_tokens(1, countdown=5)
            return {"status": "waiting"}
        return {"status": "idle"}
    try:
        backup = backup_run(backup_id=int(claim.job_ref))
    except Exception:
        logger.exception(
            "scheduled backup %s of %s failed", claim.job_ref, claim.schema
        )
        return {"status": "failed", "schema": claim.schema, "backup": claim.job_ref}
    finally:
        fair_queue.finish(schema=claim.schema, job_ref=claim.job_ref, queue=queue)
    return {"status": backup.status, "schema": claim.schema, "backup": backup.pk}
