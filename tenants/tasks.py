"""Celery tasks of the tenants app (thin: the work is in the services)."""

from cms_project.celery import app


@app.task(name="tenants.flush_usage", ignore_result=True)
def flush_usage_task() -> dict:
    """Celery beat: move the usage counters from Redis into UsageDay rows."""
    from tenants.metering.flush import flush_usage

    result = flush_usage()
    return {"batches": result.batches, "counts": result.counts}
