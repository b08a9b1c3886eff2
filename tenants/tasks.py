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
