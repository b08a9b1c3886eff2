"""A django-tasks backend that runs Wagtail's background work on the shared Celery
pool, through the same fair queue as publishing, in the schema of the tenant that
queued it.

Wagtail 8 queues its search-index and reference-index updates (and file deletions,
focal points...) through django-tasks. The default ``ImmediateBackend`` runs them inside
the request or job that saved the page, in its transaction: two publishes of the same
tenant then update that tenant's search-index table concurrently and deadlock
(``modelsearch`` refreshes every row's title norm on each update). Here they run
after the transaction that caused them, one batch per transaction, each tenant's
batches one at a time under a PostgreSQL advisory lock, so they never deadlock:

- caused by a background job (a publish on a worker): the batch runs on the same
  worker right after the job commits, in the tenant's own turn of the fair queue. A
  publish used to queue three to six index jobs of its own (a row, a token and a
  transaction each) that waited behind the tenant's other jobs; now it queues none.
  Should the batch fail, it is queued as a job (kind ``wagtail_task``), which retries.
  Queued too when another tenant's first job waits for a free worker
  (``fair_queue.newcomer_waiting``): that job then starts as soon as the page is
  live, and the index updates wait for this tenant's next turn.
- caused by a request (a draft saved in the admin): one job per transaction holding
  every distinct task, written in that transaction (queued if and only if the save
  commits) and not counted against the plan nor listed for editors.
- outside a tenant (the public schema): sent to Celery directly.

A worker killed between a job's commit and its batch loses those index updates
(derived data: ``manage.py update_index`` and ``rebuild_references_index`` rebuild
them); no page content is lost.
"""

import json
import logging
import weakref
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks.backends.base import BaseTaskBackend
from django_tasks.base import Task, TaskResult, TaskResultStatus
from django_tasks.utils import get_random_id
from django_tenants.utils import schema_context

from cms_project.celery import app
from content.jobs import (
    TRANSIENT_ERRORS,
    JobError,
    dispatch_jobs,
    enqueue_job,
    running_in_job,
)
from content.models import BackgroundJob
from tenants.jobs import fair_queue

logger = logging.getLogger(__name__)

WAGTAIL_TASK_KIND = "wagtail_task"
# The Celery task for work outside any tenant (content.tasks); sent by name.
RUN_DJANGO_TASK = "content.run_django_task"


class _Batch:
    """The distinct tasks one transaction caused in one tenant's schema. Only the
    transaction's on-commit callbacks hold it: a rollback drops them and with them
    the batch, so the next transaction starts a new one (``_current_batches`` keeps
    weak references). Callbacks run after the commit, when the connection may have
    left the schema: the batch remembers it."""

    def __init__(self, *, schema: str, inline: bool) -> None:
        self.schema = schema
        self.inline = inline
        self.tasks: list[dict] = []
        self._seen: set[str] = set()
        self._job: BackgroundJob | None = None

    def add(self, task: dict) -> None:
        key = json.dumps(task, sort_keys=True, default=str)
        if key in self._seen:
            return  # a page saved twice in one publish is indexed once
        self._seen.add(key)
        self.tasks.append(task)
        if self.inline:
            return
        args, label = {"tasks": self.tasks}, _label(self.tasks)
        if self._job is None:
            # written now (it commits with the save), dispatched at commit
            self._job = enqueue_job(
                kind=WAGTAIL_TASK_KIND, args=args, label=label, dispatch=False
            )
        else:
            BackgroundJob.objects.filter(pk=self._job.pk).update(args=args, label=label)
        if len(self.tasks) == 1:
            # robust: a queue that is down fails this job, not the save's answer
            transaction.on_commit(self._dispatch, robust=True)

    def _dispatch(self) -> None:
        if self._job is not None:
            dispatch_jobs([self._job], schema=self.schema)

    def hand_over(self) -> list[dict]:
        tasks, self.tasks = self.tasks, []
        if self._job is not None:
            BackgroundJob.objects.filter(pk=self._job.pk).delete()
            self._job = None
        return tasks

    def committed(self) -> None:
        if not self.inline:
            return
        if _another_tenant_waiting(self.schema):
            _queue_batch(self.tasks, schema=self.schema)
        else:
            run_batch_after_job(self.tasks, schema=self.schema)


def _another_tenant_waiting(schema: str) -> bool:
    try:
        return fair_queue.newcomer_waiting(other_than=schema)
    except Exception:  # noqa: BLE001 - Redis out: run the batch here, as when idle
        return False


# schema -> the open batch of the current transaction there (a transaction may
# save in several tenants' schemas: each gets its own batch and job)
_current_batches: ContextVar[dict[str, weakref.ref] | None] = ContextVar(
    "cms_wagtail_task_batches", default=None
)


def _open_batch() -> _Batch | None:
    ref = (_current_batches.get() or {}).get(connection.schema_name)
    return ref() if ref is not None else None


def _label(tasks: list[dict]) -> str:
    names = sorted({task["path"].rsplit(".", 1)[-1] for task in tasks})
    return f"Wagtail: {', '.join(names)} ({len(tasks)})"[:200]


def _add_to_batch(task: dict) -> None:
    batch = _open_batch()
    if batch is None:
        schema = connection.schema_name
        batch = _Batch(schema=schema, inline=running_in_job())
        batches = {
            name: ref
            for name, ref in (_current_batches.get() or {}).items()
            if ref() is not None
        }
        batches[schema] = weakref.ref(batch)
        _current_batches.set(batches)
        transaction.on_commit(batch.committed, robust=True)
    batch.add(task)


def hand_over_pending_tasks() -> list[dict]:
    """Take the Wagtail tasks this request's transaction has caused so far, for a
    job queued in the same transaction to run in its own turn (``run_after``).

    A publish queued by the write API saves the revision first (index updates of
    the page) and then publishes it on a worker, which saves the page and causes
    the same updates again: handed over, they are done once, by the publish, instead
    of by a job, a token and a turn of the tenant's queue of their own."""
    batch = _open_batch()
    if batch is None or batch.inline:
        return []
    # tasks caused from here on start a batch of their own
    _current_batches.set(
        {
            name: ref
            for name, ref in (_current_batches.get() or {}).items()
            if name != batch.schema
        }
    )
    return batch.hand_over()


def run_after(tasks: list[dict]) -> None:
    """Run ``tasks`` (handed over by the request that queued this job) with the
    job's own, after its commit; identical ones run once."""
    for task in tasks:
        _add_to_batch(task)


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
        elif connection.in_atomic_block:
            _add_to_batch({"path": path, "args": call_args, "kwargs": call_kwargs})
        else:
            task_args = {"path": path, "args": call_args, "kwargs": call_kwargs}
            enqueue_job(
                kind=WAGTAIL_TASK_KIND,
                args={"tasks": [task_args]},
                label=_label([task_args]),
            )
        return result


def _tasks_of(job: BackgroundJob) -> list[dict]:
    if "tasks" in job.args:
        return job.args["tasks"]
    return [job.args]  # a job queued before batches (one task per job)


def run_wagtail_task(job: BackgroundJob) -> dict:
    """The ``wagtail_task`` job kind: run the queued batch in the job's schema.
    A transient error fails the whole batch (the job retries it); a task that
    cannot succeed (its object deleted since) is logged and skipped."""
    try:
        failed = run_batch(schema=connection.schema_name, tasks=_tasks_of(job))
    except (KeyError, ImportError) as exc:
        raise JobError(f"Cannot run Wagtail task: {exc}") from exc
    return {"tasks": len(_tasks_of(job)), "failed": failed}


def run_batch_after_job(tasks: list[dict], *, schema: str) -> None:
    """Run a job's batch on its worker, after its commit; queue it when that fails
    (the queued job retries a transient error)."""
    try:
        run_batch(schema=schema, tasks=tasks)
    except Exception:
        logger.exception("Wagtail tasks after a job failed; queuing them as a job")
        _queue_batch(tasks, schema=schema)


def _queue_batch(tasks: list[dict], *, schema: str) -> None:
    """Queue ``tasks`` as one ``wagtail_task`` job in the tenant's fair queue."""
    with schema_context(schema):
        enqueue_job(kind=WAGTAIL_TASK_KIND, args={"tasks": tasks}, label=_label(tasks))


def run_batch(*, schema: str, tasks: list[dict]) -> list[str]:
    """Run ``tasks`` in ``schema`` in one transaction, one batch per tenant at a
    time. Returns the paths of tasks that failed for good (each in its savepoint)."""
    failed = []
    with _one_at_a_time(schema):
        for task in tasks:
            function = _function(task["path"])
            try:
                with transaction.atomic():
                    function(*task.get("args", []), **task.get("kwargs", {}))
            except TRANSIENT_ERRORS:
                raise
            except Exception:
                logger.exception("Wagtail task %s failed", task["path"])
                failed.append(task["path"])
    return failed


def _function(module_path: str):
    task = import_string(module_path)
    return task.func if isinstance(task, Task) else task


def run_in_tenant(*, schema: str, module_path: str, args: list, kwargs: dict):
    """Run a django-tasks task function in ``schema``, one task per tenant at a time."""
    with _one_at_a_time(schema):
        return _function(module_path)(*args, **kwargs)


@contextmanager
def _one_at_a_time(schema: str) -> Iterator[None]:
    """A transaction in ``schema`` holding the tenant's task lock: a tenant's index
    updates never run concurrently (they would deadlock on its index table)."""
    lock_key = zlib.crc32(f"django-tasks:{schema}".encode())
    with schema_context(schema), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key])
        yield
