"""Celery tasks of the content app: thin interfaces over ``content.jobs``,
``content.scheduling`` and ``content.task_backend``.

Tasks take no schema argument from callers: ``content.jobs`` records the schema of the
connection that queues a job, and the anonymous token task below runs whichever job is
next in fair order, in that job's schema. Other modules send these tasks by name, so
nothing imports this module but Celery's autodiscovery.
"""

import logging

from celery.signals import worker_ready
from django.db import InterfaceError, OperationalError, connection, transaction
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from cms_project.celery import app
from content.integrations.webhooks import deliver, queue_scheduled
from content.jobs import (
    RUN_NEXT_JOB_TASK,
    RetryLater,
    resend_missing_tokens,
    run_claimed_job,
    run_next_job,
)
from content.jobs import send_tokens as send_job_tokens
from content.scheduling import sweep_scheduled_publishing
from content.task_backend import RUN_DJANGO_TASK, run_in_tenant
from tenants.jobs.lanes import PUBLISHING, all_lanes

logger = logging.getLogger(__name__)


# max_retries=None: content.jobs counts attempts itself (CMS_JOB_MAX_ATTEMPTS).
# Redis (fair queue) or broker errors: the token comes back with backoff; the job it
# may hold keeps its lease meanwhile, and is reclaimed when the lease expires.
# picks_its_tenant: the job, not the sender, gives the log context its tenant.
@app.task(
    bind=True,
    name=RUN_NEXT_JOB_TASK,
    ignore_result=True,
    max_retries=None,
    autoretry_for=(RedisConnectionError, KombuOperationalError),
    retry_backoff=True,
    retry_backoff_max=60,
    picks_its_tenant=True,
)
def run_next_job_task(
    self,
    schema: str | None = None,
    job_id: int | None = None,
    lane: str = PUBLISHING,
) -> dict:
    """One token of a lane: run the lane's next job in fair order (or, on a retry,
    the job this token already holds; ``schema`` and ``job_id`` are set only by
    ``self.retry``). Tokens sent before lanes existed carry none: publishing."""
    try:
        if job_id is not None and schema is not None:
            outcome = run_claimed_job(schema=schema, job_id=job_id, lane=lane)
        else:
            outcome = run_next_job(lane)
    except RetryLater as later:
        raise self.retry(
            countdown=later.countdown,
            kwargs={"schema": later.schema, "job_id": later.job_id, "lane": lane},
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
    queued = sweep_scheduled_publishing()
    return {"queued": queued}


@app.task(name="content.job_watchdog", ignore_result=True)
def job_watchdog_task() -> dict:
    """Celery beat: a token for every queued job that has none waiting (their
    tokens were lost while the broker was out), and one spare, so jobs whose worker
    died are reclaimed when their lease expires even if nothing else is queued."""
    return {"tokens": resend_missing_tokens()}


@worker_ready.connect
def _reclaim_on_worker_start(sender=None, **kwargs) -> None:
    """A worker that starts (perhaps replacing a killed one) looks for orphaned jobs,
    in every lane (a token that finds nothing ends)."""
    for lane in all_lanes():
        try:
            send_job_tokens(1, lane=lane.name)
        except Exception:
            logger.exception("could not send the start-up token of %s", lane.name)


@app.task(
    bind=True,
    name=RUN_DJANGO_TASK,
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=5,
)
def run_django_task(self, module_path: str, args: list, kwargs: dict) -> None:
    """Wagtail's django-tasks work queued outside any tenant (the public schema):
    tenants' work goes through the fair queue (``content.task_backend``)."""
    run_in_tenant(
        schema=connection.schema_name, module_path=module_path, args=args, kwargs=kwargs
    )


@app.task(
    name="content.queue_webhook_retry",
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def queue_webhook_retry_task(delivery_id: int) -> None:
    """A webhook retry whose backoff is over goes onto the fair queue (runs in the
    schema that scheduled it)."""
    queue_scheduled(delivery_id=delivery_id)


@app.task(name="content.deliver_webhook_fifo", ignore_result=True)
def deliver_webhook_fifo_task(delivery_id: int) -> dict:
    """Plain FIFO delivery, bypassing the fair queue: kept only for comparison in
    ``bench/webhooks``."""
    with transaction.atomic():
        return deliver(delivery_id=delivery_id)
