"""A django-tasks backend that runs Wagtail's background work on the shared Celery
pool, through the same fair queue as publishing, in the schema of the tenant that
queued it.

Wagtail 8 queues its search-index and reference-index updates (and file deletions,
focal points...) through django-tasks. The default ``ImmediateBackend`` runs them inside
the request or job that saved the page, in its transaction: two publishes of the same
tenant then update that tenant's search-index table concurrently and deadlock
(``modelsearch`` refreshes every row's title norm on each update). Here a tenant's
task becomes a background job (kind ``wagtail_task``, not counted against the plan nor
listed for editors) queued when the transaction commits, so one tenant's mass import
waits its turn instead of delaying another tenant's index updates; the worker runs each
tenant's tasks one at a time under a PostgreSQL advisory lock, so they never deadlock
each other. Work queued outside a tenant (the public schema) goes to Celery directly.
"""

import logging
import zlib

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks.backends.base import BaseTaskBackend
from django_tasks.base import Task, TaskResult, TaskResultStatus
from django_tasks.utils import get_random_id
from django_tenants.utils import schema_context

from cms_project.celery import app
from content.jobs import JobError, enqueue_job
from content.models import BackgroundJob

logger = logging.getLogger(__name__)

WAGTAIL_TASK_KIND = "wagtail_task"
# The Celery task for work outside any tenant (content.tasks); sent by name.
RUN_DJANGO_TASK = "content.run_django_task"


class CeleryTaskBackend(BaseTaskBackend):
    """``TASKS = {"default": {"BACKEND": "content.task_backend.CeleryTaskBackend"}}``"""

    supports_async_task = False
    supports_get_result = False

    def enqueue(self, task: Task, args, kwargs) -> TaskResult:
        self.validate_task(task)
        result = TaskResult(
            task=task,
            id=get_random_id(),
            status=TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            last_attempted_at=None,
            finished_at=None,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        schema = connection.schema_name
        path = task.module_path
        call_args, call_kwargs = result.args, result.kwargs
        if schema in (settings.PUBLIC_SCHEMA_NAME, settings.CMS_TEMPLATE_SCHEMA):
            transaction.on_commit(
                lambda: app.send_task(
                    RUN_DJANGO_TASK,
                    args=(path, call_args, call_kwargs),
                    headers={"_schema_name": schema},
                    retry=True,
                )
            )
        else:
            enqueue_job(
                kind=WAGTAIL_TASK_KIND,
                args={"path": path, "args": call_args, "kwargs": call_kwargs},
                label=f"Wagtail: {path.rsplit('.', 1)[-1]}",
            )
        return result


def run_wagtail_task(job: BackgroundJob) -> dict:
    """The ``wagtail_task`` job kind: run the queued task in the job's schema."""
    try:
        run_in_tenant(
            schema=connection.schema_name,
            module_path=job.args["path"],
            args=job.args.get("args", []),
            kwargs=job.args.get("kwargs", {}),
        )
    except (KeyError, ImportError) as exc:
        raise JobError(f"Cannot run Wagtail task: {exc}") from exc
    return {}


def run_in_tenant(*, schema: str, module_path: str, args: list, kwargs: dict):
    """Run a django-tasks task function in ``schema``, one task per tenant at a time."""
    task = import_string(module_path)
    function = task.func if isinstance(task, Task) else task
    lock_key = zlib.crc32(f"django-tasks:{schema}".encode())
    with schema_context(schema), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key])
        return function(*args, **kwargs)
