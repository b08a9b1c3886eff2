"""The request id and tenant travel with a Celery task into the worker's log lines.

At publish the current request id and tenant go into the task's message headers; in
the worker they are bound before the task runs and cleared after it, so work that
fails in the worker can be traced back to the click (or API call) that queued it.

A task declared with ``picks_its_tenant=True`` (a fair-queue token) is anonymous: the
job it runs may belong to another tenant than the request that sent it, so it gets a
fresh request id, and whoever runs the job binds the job's own tenant and request id
(``bind_job_context``). This module knows no task by name.
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
    if getattr(task, "picks_its_tenant", False):
        # whoever sent the token, the job it runs may be another tenant's
        log_context.bind(request_id=log_context.new_request_id())
        return
    log_context.bind(
        request_id=_header(task, REQUEST_ID_HEADER) or log_context.new_request_id(),
        tenant=_header(task, TENANT_HEADER) or _header(task, "_schema_name") or "-",
    )


def current_request_id() -> str:
    """The request id of the request (or task) running now, '' outside one: a job
    records it when queued."""
    request_id = log_context.request_id_var.get()
    return "" if request_id == "-" else request_id


def bind_job_context(*, schema: str, request_id: str = "") -> list:
    """For tasks that pick their job while running (fair-queue tokens): the job's log
    lines carry its tenant and the request id of the click that queued it. Returns
    tokens for ``unbind_job_context`` (a job run outside a task leaves no trace)."""
    if request_id:
        return log_context.bind(tenant=schema, request_id=request_id)
    return log_context.bind(tenant=schema)


def unbind_job_context(tokens: list) -> None:
    log_context.unbind(tokens)


@task_postrun.connect(dispatch_uid="cms_request_context_postrun")
def finish_task(**kwargs) -> None:
    log_context.clear()


@worker_process_shutdown.connect(dispatch_uid="cms_metrics_process_dead")
def forget_live_gauges(pid=None, **kwargs) -> None:
    """A pool process that exits takes its live gauges with it (multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
