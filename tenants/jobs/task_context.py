"""The request id and tenant travel with a Celery task into the worker's log lines;
publish jobs are counted per tenant and outcome when their task ends.

At publish the current request id and tenant go into the task's message headers; in
the worker they are bound before the task runs and cleared after it, so a publish
that fails in the worker can be traced back to the click (or API call) that queued it.

Fair-queue tokens (``content.run_next_job``) are anonymous: the job they run may
belong to another tenant than the request that sent the token, so a token gets a
fresh request id and its tenant is bound when the job is claimed
(``bind_task_tenant``, called by ``content.jobs``).
"""

import logging
import os

from celery.signals import (
    before_task_publish,
    task_postrun,
    task_prerun,
    worker_process_shutdown,
)
from django.db import connection

from tenants.observability import log_context

logger = logging.getLogger(__name__)

# Fair-queue tokens: the job (and its tenant) is chosen in the worker.
ANONYMOUS_TASKS = frozenset({"content.run_next_job"})
REQUEST_ID_HEADER = "cms_request_id"
TENANT_HEADER = "cms_tenant"


def _current_tenant() -> str:
    tenant = log_context.tenant_var.get()
    if tenant != "-":
        return tenant
    schema = getattr(connection, "schema_name", None)
    return schema or "-"


@before_task_publish.connect(dispatch_uid="cms_request_context_publish")
def add_context_headers(headers: dict | None = None, **kwargs) -> None:
    if headers is None:
        return
    headers.setdefault(REQUEST_ID_HEADER, log_context.request_id_var.get())
    headers.setdefault(TENANT_HEADER, _current_tenant())


def _header(task, name: str) -> str | None:
    request = task.request
    headers = getattr(request, "headers", None) or {}
    return headers.get(name) or request.get(name)


@task_prerun.connect(dispatch_uid="cms_request_context_prerun")
def bind_task_context(task=None, **kwargs) -> None:
    if task is None:
        return
    log_context.clear()
    if task.name in ANONYMOUS_TASKS:
        # whoever sent the token, the job it runs may be another tenant's
        log_context.bind(request_id=log_context.new_request_id())
        return
    log_context.bind(
        request_id=_header(task, REQUEST_ID_HEADER) or log_context.new_request_id(),
        tenant=_header(task, TENANT_HEADER) or _header(task, "_schema_name") or "-",
    )


def bind_task_tenant(schema: str) -> None:
    """For tasks that pick their tenant while running (fair-queue tokens)."""
    log_context.bind(tenant=schema)


# Tasks that run publish jobs (the fair queue's tokens and the plain FIFO task).
PUBLISH_TASKS = frozenset({"content.run_next_job", "content.tasks.publish_page_task"})


def publish_job_outcome(task, retval, state: str | None) -> tuple[str, str] | None:
    """(tenant, outcome) of a finished publish task, None for other tasks and for
    tokens that found no job."""
    if task is None or task.name not in PUBLISH_TASKS:
        return None
    context_tenant = log_context.tenant_var.get()
    if isinstance(retval, dict) and retval.get("status"):
        if task.name == "content.run_next_job":
            tenant = retval.get("schema")
        else:
            tenant = context_tenant
        return (tenant, str(retval["status"])) if tenant and tenant != "-" else None
    if state == "FAILURE" and context_tenant != "-":
        return context_tenant, "error"
    return None


@task_postrun.connect(dispatch_uid="cms_request_context_postrun")
def finish_task(task=None, retval=None, state=None, **kwargs) -> None:
    """Count a publish job (metrics and usage), then clear the context."""
    try:
        outcome = publish_job_outcome(task, retval, state)
        if outcome is not None:
            from tenants.metering import counters
            from tenants.observability import metrics

            tenant, result = outcome
            labels = metrics.tenant_labels
            busiest = counters.record_publish_job(
                schema=tenant,
                refresh_labels=metrics.top_tenants() if labels.refresh_due() else 0,
            )
            if busiest is not None:
                labels.update(busiest)
            metrics.record_publish_job(tenant=tenant, outcome=result)
    except Exception:
        logger.exception("could not count a publish job")
    finally:
        log_context.clear()


@worker_process_shutdown.connect(dispatch_uid="cms_metrics_process_dead")
def forget_live_gauges(pid=None, **kwargs) -> None:
    """A pool process that exits takes its live gauges with it (multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
