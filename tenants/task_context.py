"""The request id and tenant travel with a Celery task into the worker's log lines.

At publish the current request id and tenant go into the task's message headers; in
the worker they are bound before the task runs and cleared after it, so a publish
that fails in the worker can be traced back to the click (or API call) that queued it.

Fair-queue tokens (``content.run_next_job``) carry the id of whatever queued the
token; the job they run may belong to another tenant, so their tenant is bound from
the schema they actually run in (see ``bind_task_tenant``).
"""

from celery.signals import before_task_publish, task_postrun, task_prerun
from django.db import connection

from tenants import request_context

REQUEST_ID_HEADER = "cms_request_id"
TENANT_HEADER = "cms_tenant"


def _current_tenant() -> str:
    tenant = request_context.tenant_var.get()
    if tenant != "-":
        return tenant
    schema = getattr(connection, "schema_name", None)
    return schema or "-"


@before_task_publish.connect(dispatch_uid="cms_request_context_publish")
def add_context_headers(headers: dict | None = None, **kwargs) -> None:
    if headers is None:
        return
    headers.setdefault(REQUEST_ID_HEADER, request_context.request_id_var.get())
    headers.setdefault(TENANT_HEADER, _current_tenant())


def _header(task, name: str) -> str | None:
    request = task.request
    headers = getattr(request, "headers", None) or {}
    return headers.get(name) or request.get(name)


@task_prerun.connect(dispatch_uid="cms_request_context_prerun")
def bind_task_context(task=None, **kwargs) -> None:
    if task is None:
        return
    request_context.clear()
    request_context.bind(
        request_id=_header(task, REQUEST_ID_HEADER) or request_context.new_request_id(),
        tenant=_header(task, TENANT_HEADER) or _header(task, "_schema_name") or "-",
    )


def bind_task_tenant(schema: str) -> None:
    """For tasks that pick their tenant while running (fair-queue tokens)."""
    request_context.bind(tenant=schema)


@task_postrun.connect(dispatch_uid="cms_request_context_postrun")
def clear_task_context(**kwargs) -> None:
    request_context.clear()
