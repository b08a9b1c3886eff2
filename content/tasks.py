"""Celery tasks of the content app.

Tasks take no schema argument from callers: ``content.jobs`` records the schema of the
connection that queues a job, and the anonymous token task below runs whichever job is
next in fair order, in that job's schema. ``publish_page_task`` is the plain FIFO path
(kept for comparison in ``bench/publish_fairness``).
"""

import logging

from celery.signals import worker_ready
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from cms_project.celery import app
from content.publishing import PublishError, publish_page

logger = logging.getLogger(__name__)


# max_retries=None: content.jobs counts attempts itself (CMS_JOB_MAX_ATTEMPTS).
# Redis (fair queue) or broker errors: the token comes back with backoff; the job it
# may hold keeps its lease meanwhile, and is reclaimed when the lease expires.
@app.task(
    bind=True,
    name="content.run_next_job",
    ignore_result=True,
    max_retries=None,
    autoretry_for=(RedisConnectionError, KombuOperationalError),
    retry_backoff=True,
    retry_backoff_max=60,
)
def run_next_job_task(
    self, schema: str | None = None, job_id: int | None = None
) -> dict:
    """One token: run the next job in fair order (or, on a retry, the job this token
    already holds; ``schema`` and ``job_id`` are set only by ``self.retry``)."""
    from content.jobs import RetryLater, run_claimed_job, run_next_job

    try:
        if job_id is not None and schema is not None:
            outcome = run_claimed_job(schema=schema, job_id=job_id)
        else:
            outcome = run_next_job()
    except RetryLater as later:
        raise self.retry(
            countdown=later.countdown,
            kwargs={"schema": later.schema, "job_id": later.job_id},
        ) from later
    return {
        "schema": outcome.schema,
        "job_id": outcome.job_id,
        "status": outcome.status,
    }


@app.task(name="content.sweep_scheduled_publishing", ignore_result=True)
def sweep_scheduled_publishing_task() -> dict:
    """Celery beat: queue Wagtail's go-live / expiry pass for every active tenant with
    due work, through the fair queue (replaces a cron of ``publish_scheduled``)."""
    from content.scheduling import sweep_scheduled_publishing

    queued = sweep_scheduled_publishing()
    return {"queued": queued}


@app.task(name="content.job_watchdog", ignore_result=True)
def job_watchdog_task() -> dict:
    """Celery beat: a token for every queued job that has none waiting (their
    tokens were lost while the broker was out), and one spare, so jobs whose worker
    died are reclaimed when their lease expires even if nothing else is queued."""
    from content.jobs import resend_missing_tokens

    return {"tokens": resend_missing_tokens()}


@worker_ready.connect
def _reclaim_on_worker_start(sender=None, **kwargs) -> None:
    """A worker that starts (perhaps replacing a killed one) looks for orphaned jobs."""
    from content.jobs import send_tokens

    try:
        send_tokens(1)
    except Exception:
        logger.exception("could not send the start-up token")


@app.task(
    bind=True,
    name="content.run_django_task",
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=5,
)
def run_django_task(self, module_path: str, args: list, kwargs: dict) -> None:
    """Wagtail's django-tasks work (search and reference index updates...) in the
    schema that queued it (``content.task_backend``)."""
    from django.db import connection

    from content.task_backend import run_in_tenant

    run_in_tenant(
        schema=connection.schema_name, module_path=module_path, args=args, kwargs=kwargs
    )


@app.task(
    bind=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=5,
)
def publish_page_task(
    self, page_id: int, revision_id: int | None = None, user_id: int | None = None
) -> dict:
    try:
        outcome = publish_page(
            page_id=page_id, revision_id=revision_id, user_id=user_id
        )
    except PublishError as exc:
        logger.warning("publish of page %s failed: %s", page_id, exc)
        return {"page_id": page_id, "status": "failed", "reason": str(exc)}
    status = "already-live" if outcome.already_live else "published"
    logger.info("page %s revision %s: %s", page_id, outcome.revision_id, status)
    return {"page_id": page_id, "revision_id": outcome.revision_id, "status": status}
