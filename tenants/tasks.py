"""Celery tasks of the tenants app (thin: the work is in the services)."""

from cms_project.celery import app


@app.task(name="tenants.flush_usage", ignore_result=True)
def flush_usage_task() -> dict:
    """Celery beat: move the usage counters from Redis into UsageDay rows."""
    from tenants.metering.flush import flush_usage

    result = flush_usage()
    return {"batches": result.batches, "counts": result.counts}


@app.task(name="tenants.schedule_backups", ignore_result=True)
def schedule_backups_task() -> dict:
    """Celery beat: queue the backups whose slot has come; prune expired backups and
    the state kept for undoing restores past their grace period."""
    from tenants.backups.restore import restores_expire
    from tenants.backups.scheduling import schedule_due_backups
    from tenants.backups.snapshots import backups_prune

    queued = schedule_due_backups()
    pruned = backups_prune()
    expired = restores_expire()
    return {"queued": queued.queued, "pruned": pruned.deleted, "expired": expired}


@app.task(name="tenants.drop_moved_copies", ignore_result=True)
def drop_moved_copies_task() -> list[str]:
    """With pods: drop this pod's copies of tenants moved away whose grace period
    is over (``pods cleanup`` does the same for every pod)."""
    from tenants.pods import directory, moves

    if not directory.enabled():
        return []
    return moves.moved_schemas_drop(source=directory.local_pod())


@app.task(name="tenants.run_next_backup", ignore_result=True)
def run_next_backup_task() -> dict:
    """A token of the backups' fair queue: run the next backup in fair order."""
    from tenants.backups.scheduling import run_next_backup

    return run_next_backup()


@app.task(name="tenants.build_data_export", ignore_result=True)
def build_data_export_task(export_id: int) -> dict:
    """A tenant's self-service data export, built in the background."""
    from tenants.backups.data_export import data_export_build

    export = data_export_build(export_id=export_id)
    return {"export": export.pk, "status": export.status}


@app.task(name="tenants.verify_domain", bind=True, ignore_result=True)
def verify_domain_task(self, domain_id: int) -> str:
    """Retry a pending domain's ownership check with growing pauses; after
    ``CMS_DOMAIN_VERIFY_ATTEMPTS`` tries it is shown as failed (a later "verify now"
    may still succeed). Removed or already verified domains end the retries."""
    from django.conf import settings

    from tenants.domains.ownership import domain_mark_failed, domain_verify
    from tenants.errors import DomainVerificationFailed
    from tenants.models import Domain

    domain = Domain.objects.filter(pk=domain_id).first()
    if domain is None or domain.is_verified:
        return "gone" if domain is None else "verified"
    try:
        domain_verify(domain=domain)
    except DomainVerificationFailed:
        attempts = settings.CMS_DOMAIN_VERIFY_ATTEMPTS
        if self.request.retries + 1 >= attempts:
            domain_mark_failed(domain=domain)
            return "failed"
        delay = min(
            settings.CMS_DOMAIN_VERIFY_RETRY_SECONDS * 2**self.request.retries,
            3600,
        )
        raise self.retry(countdown=delay, max_retries=attempts) from None
    return "verified"


def schedule_domain_verification(domain_id: int) -> None:
    """Queue the background check once the domain's row is committed. A broker that
    cannot be reached leaves the domain pending (checked on "verify now"), logged."""
    import logging

    from django.db import transaction

    def send() -> None:
        try:
            verify_domain_task.delay(domain_id)
        except Exception:  # noqa: BLE001 - the domain is saved; only the retry is lost
            logging.getLogger(__name__).warning(
                "could not queue the verification of domain %s", domain_id
            )

    transaction.on_commit(send)
