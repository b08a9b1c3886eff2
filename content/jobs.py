"""Background jobs of a tenant, run on the shared Celery pool in fair order.

``enqueue_jobs`` stores each job as a ``BackgroundJob`` row in the current tenant's
schema (captured from the connection: no caller passes a schema), counts it against the
plan's ``publish_jobs_per_hour``, and, once the transaction commits, hands its id to the
fair queue (``tenants.jobs.fair_queue``) and sends one anonymous token task per job. A
worker running a token pops the next job in round-robin order across tenants and runs
it in that tenant's schema (``run_next_job``).

Exactly once: a job's row is locked while it runs and marked ``done`` in the same
transaction as its work, and every executor is idempotent. A worker killed mid-job
rolls its transaction back; when the job's lease expires it goes back to the front of
its tenant's list and runs again, so a publish ends with exactly one published
revision. Transient database errors are retried with exponential backoff (the job
keeps its in-flight slot meanwhile); any other error, or too many attempts, ends the
job ``failed`` with the reason, which editors see in the admin.
"""

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from content.models import BackgroundJob
from tenants.jobs import fair_queue
from tenants.jobs.fair_queue import HourlyLimitExceeded
from tenants.jobs.task_context import bind_task_tenant
from tenants.models import Tenant
from tenants.resilience import breakers

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)

__all__ = [
    "HourlyLimitExceeded",
    "JobError",
    "NoTenant",
    "enqueue_job",
    "enqueue_jobs",
    "job_kind",
    "run_claimed_job",
    "run_next_job",
]


class JobError(Exception):
    """A job that cannot succeed (bad arguments, a page gone): it ends ``failed`` with
    this message, without retries."""


class NoTenant(JobError):
    """Jobs belong to a tenant; the public schema has none."""


class EnqueueFailed(JobError):
    """The fair queue or the broker could not take the job."""


@dataclass(frozen=True)
class JobKind:
    name: str
    run: Callable[[BackgroundJob], dict | None]
    counts_against_plan: bool


_KINDS: dict[str, JobKind] = {}
_modules_loaded = False


def job_kind(name: str, *, counts_against_plan: bool = True) -> Callable:
    """Register an executor: ``run(job) -> result`` in the job's tenant schema, inside
    a transaction. It must be idempotent (it may run again after a crash)."""

    def register(function: Callable[[BackgroundJob], dict | None]) -> Callable:
        _KINDS[name] = JobKind(name, function, counts_against_plan)
        return function

    return register


def get_kind(name: str) -> JobKind:
    global _modules_loaded
    if not _modules_loaded:
        importlib.import_module("content.publish_jobs")
        for module in getattr(settings, "CMS_BACKGROUND_JOB_MODULES", []):
            importlib.import_module(module)
        _modules_loaded = True
    try:
        return _KINDS[name]
    except KeyError:
        raise JobError(f"Unknown job kind {name!r}.") from None


def _current_tenant() -> Tenant:
    schema = connection.schema_name
    if schema in (settings.PUBLIC_SCHEMA_NAME, settings.CMS_TEMPLATE_SCHEMA):
        raise NoTenant("Background jobs run for a tenant, not the public schema.")
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Tenant) and tenant.schema_name == schema:
        return tenant
    tenant = Tenant.objects.select_related("plan").filter(schema_name=schema).first()
    if tenant is None:
        raise NoTenant(f"No tenant owns the schema {schema!r}.")
    return tenant


def enqueue_job(
    *, kind: str, args: dict, label: str = "", user_id: int | None = None
) -> BackgroundJob:
    """Queue one job of the current tenant; see ``enqueue_jobs``."""
    return enqueue_jobs(kind=kind, args_list=[args], labels=[label], user_id=user_id)[0]


def enqueue_jobs(
    *,
    kind: str,
    args_list: list[dict],
    labels: list[str] | None = None,
    user_id: int | None = None,
) -> list[BackgroundJob]:
    """Queue jobs of the current tenant (the connection's schema), all or none.

    Raises ``HourlyLimitExceeded`` when the plan's publish jobs per hour would be
    exceeded (nothing is queued then), ``NoTenant`` outside a tenant schema.
    """
    job_kind_ = get_kind(kind)
    tenant = _current_tenant()
    if not args_list:
        return []
    if job_kind_.counts_against_plan:
        try:
            fair_queue.take_hourly_allowance(
                schema=tenant.schema_name,
                count=len(args_list),
                limit=tenant.plan.publish_jobs_per_hour,
            )
        except RedisError as exc:
            # refused before anything is stored: the editor is told, nothing is lost
            raise EnqueueFailed(f"The job queue is unavailable: {exc}") from exc
    labels = labels or [""] * len(args_list)
    jobs = BackgroundJob.objects.bulk_create(
        BackgroundJob(kind=kind, args=args, label=label, requested_by_id=user_id)
        for args, label in zip(args_list, labels, strict=True)
    )
    schema = tenant.schema_name
    ids = [job.pk for job in jobs]
    transaction.on_commit(lambda: _dispatch(schema=schema, job_ids=ids))
    return jobs


def _dispatch(*, schema: str, job_ids: list[int]) -> None:
    """After commit: hand the jobs to the fair queue and send one token each.

    If the fair queue (Redis) cannot take them, the jobs end ``failed`` with the
    reason and the caller gets ``EnqueueFailed``: refused, never silently lost. Once
    they are in the fair queue they are kept: a token that cannot be sent (the
    broker is out) is sent later by the watchdog (``resend_missing_tokens``)."""
    try:
        fair_queue.push(
            schema=schema,
            job_refs=[str(pk) for pk in job_ids],
            cap=settings.CMS_JOBS_IN_FLIGHT_PER_TENANT,
        )
    except Exception as exc:
        logger.exception("could not queue jobs %s of %s", job_ids, schema)
        from django_tenants.utils import schema_context

        with schema_context(schema):
            BackgroundJob.objects.filter(
                pk__in=job_ids, status=BackgroundJob.Status.QUEUED
            ).update(
                status=BackgroundJob.Status.FAILED,
                reason=f"Could not be queued: {exc}",
                finished_at=timezone.now(),
            )
        raise EnqueueFailed(f"The job queue is unavailable: {exc}") from exc
    try:
        send_tokens(len(job_ids))
    except Exception as exc:  # noqa: BLE001 - the jobs are kept; the watchdog sends
        logger.warning(
            "jobs %s of %s are queued; their tokens could not be sent and will be "
            "sent by the watchdog: %s",
            job_ids,
            schema,
            exc,
        )


def send_tokens(count: int, *, countdown: float | None = None) -> None:
    """Send ``count`` run-the-next-job tokens (Celery retries broker errors with
    ``CELERY_TASK_PUBLISH_RETRY_POLICY``; while the broker's circuit breaker is open
    this raises ``DependencyUnavailable`` at once)."""
    from content.tasks import run_next_job_task

    for _ in range(count):
        # A token belongs to no tenant (it runs whichever job is next): the public
        # schema header spares the worker a tenant lookup per token.
        with breakers.for_broker().guard():
            run_next_job_task.apply_async(
                queue=fair_queue.jobs_queue(),
                countdown=countdown,
                retry=True,
                headers={"_schema_name": settings.PUBLIC_SCHEMA_NAME},
            )


def resend_missing_tokens(*, limit: int = 1000) -> int:
    """The watchdog: send a token for each job waiting in the fair queue beyond the
    tokens waiting in the broker (tokens lost with a broker outage, or never sent),
    and always one, so that jobs of a dead worker are reclaimed when their lease
    ends. Extra tokens are harmless (a token that finds nothing to do ends)."""
    from cms_project.celery import app

    waiting_jobs = sum(fair_queue.pending_by_tenant().values())
    with app.connection_for_write() as conn:
        waiting_tokens = (
            conn.default_channel.queue_declare(
                queue=fair_queue.jobs_queue(), durable=True, auto_delete=False
            ).message_count
            or 0
        )
    missing = max(1, min(limit, waiting_jobs - waiting_tokens))
    send_tokens(missing)
    return missing


@dataclass(frozen=True)
class TokenOutcome:
    schema: str | None
    job_id: int | None
    status: str


def run_next_job() -> TokenOutcome:
    """Spend one token: pop the next job in fair order and run it.

    Keeps one token per job: tokens for jobs reclaimed from dead workers are sent;
    a token that found every pending tenant at its cap, or only live leases, comes
    back later instead of being dropped.
    """
    claim = fair_queue.pop()
    if claim.reclaimed:
        logger.warning("reclaimed %s jobs whose worker died", claim.reclaimed)
        send_tokens(claim.reclaimed)
    if claim.schema is None:
        if claim.capped:
            send_tokens(1, countdown=settings.CMS_JOB_CAPPED_RETRY_SECONDS)
            return TokenOutcome(None, None, "capped")
        if claim.next_lease_expiry is not None:
            wait = max(0.2, claim.next_lease_expiry - time.time() + 0.2)
            send_tokens(1, countdown=wait)
            return TokenOutcome(None, None, "waiting-for-lease")
        return TokenOutcome(None, None, "idle")
    job_id = int(claim.job_ref)
    return run_claimed_job(schema=claim.schema, job_id=job_id, attempt=claim.attempt)


class RetryLater(Exception):
    """A transient error: the caller schedules another attempt after ``countdown``."""

    def __init__(self, *, schema: str, job_id: int, countdown: float) -> None:
        super().__init__(f"retry job {job_id} of {schema} in {countdown:.1f} s")
        self.schema = schema
        self.job_id = job_id
        self.countdown = countdown


def backoff_seconds(attempt: int) -> float:
    base = settings.CMS_JOB_RETRY_BACKOFF_MS / 1000
    return min(settings.CMS_JOB_RETRY_BACKOFF_MAX_SECONDS, base * 2 ** (attempt - 1))


def run_claimed_job(
    *, schema: str, job_id: int, attempt: int | None = None
) -> TokenOutcome:
    """Run a leased job in its tenant's schema and record the outcome. ``attempt`` is
    the attempt number the fair queue counted (counted here on a retry).

    Raises ``RetryLater`` after a transient error with attempts left (the job keeps its
    in-flight slot until then).
    """
    from django_tenants.utils import schema_context

    Status = BackgroundJob.Status
    bind_task_tenant(schema)  # the job's log lines carry its tenant
    if attempt is None:
        attempt = fair_queue.count_attempt(schema=schema, job_ref=str(job_id))
    with schema_context(schema):
        try:
            status = _run_in_schema(job_id, attempt)
        except TRANSIENT_ERRORS as exc:
            connection.close_if_unusable_or_obsolete()
            if attempt < settings.CMS_JOB_MAX_ATTEMPTS:
                countdown = backoff_seconds(attempt)
                _record(
                    job_id,
                    status=Status.QUEUED,
                    attempts=attempt,
                    reason=f"Attempt {attempt} failed ({exc}); retrying in "
                    f"{countdown:.1f} s.",
                )
                fair_queue.extend_lease(
                    schema=schema,
                    job_ref=str(job_id),
                    seconds=countdown + fair_queue.lease_seconds(),
                )
                raise RetryLater(
                    schema=schema, job_id=job_id, countdown=countdown
                ) from exc
            _record(
                job_id,
                status=Status.FAILED,
                attempts=attempt,
                reason=f"Failed after {attempt} attempts: {exc}",
                finished=True,
            )
            status = Status.FAILED
        except Exception as exc:
            logger.exception("job %s of %s failed", job_id, schema)
            _record(
                job_id,
                status=Status.FAILED,
                attempts=attempt,
                reason=str(exc),
                finished=True,
            )
            status = Status.FAILED
    fair_queue.finish(schema=schema, job_ref=str(job_id))
    logger.info("job %s of %s: %s", job_id, schema, status)
    return TokenOutcome(schema, job_id, status)


def _run_in_schema(job_id: int, attempt: int) -> str:
    """One transaction: lock the job row (a duplicate run of the same job waits, then
    sees it done), run the work, mark it done. While it runs, the admin shows it as
    running from the fair queue's in-flight set, which costs no extra commit."""
    Status = BackgroundJob.Status
    try:
        with transaction.atomic():
            job = BackgroundJob.objects.select_for_update().filter(pk=job_id).first()
            if job is None:
                return "gone"
            if job.status in (Status.DONE, Status.FAILED):
                return job.status
            job.attempts = attempt
            job.started_at = timezone.now()
            if attempt > settings.CMS_JOB_MAX_ATTEMPTS:
                raise JobError(
                    f"Gave up after {attempt - 1} attempts: the worker running it "
                    "stopped each time."
                )
            job.result = get_kind(job.kind).run(job)
            job.status = Status.DONE
            job.reason = ""
            job.finished_at = timezone.now()
            job.save(
                update_fields=[
                    "status", "reason", "result", "attempts", "started_at",
                    "finished_at",
                ]
            )  # fmt: skip
            return job.status
    except JobError as exc:
        # the job's own writes rolled back with the transaction
        _record(
            job_id,
            status=Status.FAILED,
            attempts=attempt,
            reason=str(exc),
            finished=True,
        )
        return Status.FAILED


def _record(
    job_id: int, *, status: str, reason: str, attempts: int, finished: bool = False
) -> None:
    fields = {"status": status, "reason": reason[:2000], "attempts": attempts}
    if finished:
        fields["finished_at"] = timezone.now()
    BackgroundJob.objects.filter(pk=job_id).update(**fields)
