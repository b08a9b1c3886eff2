"""A django-tasks backend that runs Wagtail's background work on the shared Celery
pool, in the schema of the tenant that queued it.

Wagtail 8 queues its search-index and reference-index updates (and file deletions,
focal points...) through django-tasks. The default ``ImmediateBackend`` runs them inside
the request or job that saved the page, in its transaction: two publishes of the same
tenant then update that tenant's search-index table concurrently and deadlock
(``modelsearch`` refreshes every row's title norm on each update). Here a task is sent
to Celery when the transaction commits, carrying the schema of the connection that
queued it (tenant-schemas-celery's header), and the worker runs each tenant's tasks
one at a time under a PostgreSQL advisory lock, so they never deadlock each other.
"""

import logging
import zlib

from django.db import connection, transaction
from django.utils import timezone
from django_tasks.backends.base import BaseTaskBackend
from django_tasks.base import Task, TaskResult, TaskResultStatus
from django_tasks.utils import get_random_id
from django_tenants.utils import schema_context

logger = logging.getLogger(__name__)


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

        def send() -> None:
            from content.tasks import run_django_task

            run_django_task.apply_async(
                args=(path, call_args, call_kwargs),
                headers={"_schema_name": schema},
                retry=True,
            )

        transaction.on_commit(send)
        return result


def run_in_tenant(*, schema: str, module_path: str, args: list, kwargs: dict):
    """Run a django-tasks task function in ``schema``, one task per tenant at a time."""
    from django.utils.module_loading import import_string

    task = import_string(module_path)
    function = task.func if isinstance(task, Task) else task
    lock_key = zlib.crc32(f"django-tasks:{schema}".encode())
    with schema_context(schema), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key])
        return function(*args, **kwargs)
