"""Background jobs of a tenant, run on the shared Celery pool in fair order.

``enqueue_jobs`` stores each job as a ``BackgroundJob`` row in the current tenant's
schema (captured from the connection: no caller passes a schema) with the request id
of the click that queued it, counts it against the plan's ``publish_jobs_per_hour``,
and, once the transaction commits, hands its id to the fair queue of its kind's lane
(``tenants.jobs.lanes``: publishing, capped by the plan's ``publish_concurrency``;
webhook deliveries, capped by its ``webhook_concurrency``, on their own workers) and
sends one anonymous token task per job to the lane's Celery queue, by name. A worker
running a token pops the next job of that lane in round-robin order across tenants and
runs it in that tenant's schema (``run_next_job``); the kinds of job are registered
with ``tenants.jobs.kinds`` by ``ContentConfig.ready``.

Exactly once: a job's row is locked while it runs and marked ``done`` in the same
transaction as its work, and every executor is idempotent. A worker killed mid-job
rolls its transaction back; when the job's lease expires it goes back to the front of
its tenant's list and runs again, so a publish ends with exactly one published
revision. Transient database errors are retried with exponential backoff (the job
keeps its in-flight slot meanwhile); any other error, or too many attempts, ends the
job ``failed`` with the reason, which editors see in the admin.

Big jobs run in slices: an executor that returns ``NextSlice`` commits what it did
(and its progress), and the job goes back to the end of its tenant's list, so other
tenants' jobs run between its slices. Each finished job is metered here, where it
runs (usage and metrics of its tenant).
"""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context
from redis.exceptions import RedisError

from cms_project.celery import app
from content.models import BackgroundJob
from tenants.jobs import fair_queue
from tenants.jobs.fair_queue import HourlyLimitExceeded
from tenants.jobs.kinds import UnknownJobKind, get_job_kind
from tenants.jobs.lanes import PUBLISHING, all_lanes, get_lane
from tenants.jobs.task_context import (
    bind_job_context,
    current_request_id,
    unbind_job_context,
)
from tenants.metering import counters
from tenants.models import Tenant
from tenants.observability import metrics
from tenants.resilience import breakers

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)
# The Celery task that spends a token (content.tasks); sent by name.
RUN_NEXT_JOB_TASK = "content.run_next_job"

# True while a job's work runs on a worker: work it causes (Wagtail's index updates)
# can run in the same turn of the fair queue instead of queuing jobs of its own.
_in_job: ContextVar[bool] = ContextVar("cms_in_job", default=False)


def running_in_job() -> bool:
    """Whether the code calling is a background job's work, run by a worker."""
    return _in_job.get()


@contextmanager
def background_work() -> Iterator[None]:
    """Mark the code inside as a job's work on a worker (see ``running_in_job``)."""
    marker = _in_job.set(True)
    try:
        yield
    finally:
        _in_job.reset(marker)


__all__ = [
    "HourlyLimitExceeded",
    "JobError",
    "NextSlice",
    "NoTenant",
    "background_work",
    "dispatch_jobs",
    "enqueue_job",
    "enqueue_jobs",
    "retry_job",
    "run_claimed_job",
    "run_next_job",
    "running_in_job",
]


class JobError(Exception):
    """A job that cannot succeed (bad arguments, a page gone): it ends ``failed`` with
    this message, without retries."""


class NoTenant(JobError):
    """Jobs belong to a tenant; the public schema has none."""


class EnqueueFailed(JobError):
    """The fair queue or the broker could not take the job."""


class NotRetryable(JobError):
    """Only a failed job can be queued again."""


@dataclass(frozen=True)
class NextSlice:
    """Returned by an executor that did one slice of a big job: what it did is
    committed with the job's progress and the job waits for its next turn."""

    result: dict = field(default_factory=dict)


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


def _kind(name: str):
    try:
        return get_job_kind(name)
    except UnknownJobKind as exc:
        raise JobError(str(exc)) from None


def enqueue_job(
    *,
    kind: str,
    args: dict,
    label: str = "",
    user_id: int | None = None,
    page_id: int | None = None,
    dispatch: bool = True,
) -> BackgroundJob:
    """Queue one job of the current tenant; see ``enqueue_jobs``."""
    return enqueue_jobs(
        kind=kind,
        args_list=[args],
        labels=[label],
        user_id=user_id,
        page_ids=[page_id],
        dispatch=dispatch,
    )[0]


def enqueue_jobs(
    *,
    kind: str,
    args_list: list[dict],
    labels: list[str] | None = None,
    user_id: int | None = None,
    page_ids: list[int | None] | None = None,
    dispatch: bool = True,
) -> list[BackgroundJob]:
    """Queue jobs of the current tenant (the connection's schema), all or none.

    They reach the fair queue when the transaction commits; with ``dispatch=False``
    only when the caller calls ``dispatch_jobs`` (a job that may still be withdrawn
    before the commit, as a batch of Wagtail tasks handed over to a publish).

    Raises ``HourlyLimitExceeded`` when the plan's publish jobs per hour would be
    exceeded (nothing is queued then), ``NoTenant`` outside a tenant schema.
    """
    job_kind = _kind(kind)
    tenant = _current_tenant()
    if not args_list:
        return []
    if job_kind.counts_against_plan:
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
    page_ids = page_ids or [None] * len(args_list)
    request_id = current_request_id()
    jobs = BackgroundJob.objects.bulk_create(
        BackgroundJob(
            kind=kind,
            args=args,
            label=label,
            requested_by_id=user_id,
            page_id=page_id,
            request_id=request_id,
        )
        for args, label, page_id in zip(args_list, labels, page_ids, strict=True)
    )
    if dispatch:
        _dispatch_on_commit(
            tenant=tenant, job_ids=[job.pk for job in jobs], lane=job_kind.lane
        )
    return jobs


def dispatch_jobs(jobs: list[BackgroundJob], *, schema: str) -> None:
    """Hand jobs queued with ``dispatch=False`` in ``schema`` to the fair queue (at
    commit; called from an on-commit callback, the connection may have left the
    schema by then)."""
    with schema_context(schema):
        tenant = _current_tenant()
    by_lane: dict[str, list[int]] = {}
    for job in jobs:
        by_lane.setdefault(_kind(job.kind).lane, []).append(job.pk)
    for lane, job_ids in by_lane.items():
        _dispatch_on_commit(tenant=tenant, job_ids=job_ids, lane=lane)


def retry_job(*, job_id: int, user_id: int | None = None) -> BackgroundJob:
    """Queue a failed job of the current tenant again (the admin's Retry), as
    ``user_id`` when given. It counts against the hourly allowance like a new job; a
    sliced job carries on where it stopped; its kind re-checks permissions when it
    runs."""
    tenant = _current_tenant()
    with transaction.atomic():
        job = BackgroundJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            raise NotRetryable(f"No job with id {job_id}.")
        if job.status != BackgroundJob.Status.FAILED:
            raise NotRetryable(f"Job {job_id} is {job.status}; only failed jobs retry.")
        job_kind = _kind(job.kind)
        if job_kind.counts_against_plan:
            fair_queue.take_hourly_allowance(
                schema=tenant.schema_name,
                count=1,
                limit=tenant.plan.publish_jobs_per_hour,
            )
        job.status = BackgroundJob.Status.QUEUED
        job.reason = ""
        job.attempts = 0
        job.started_at = job.finished_at = None
        job.request_id = current_request_id() or job.request_id
        if user_id is not None:
            # the job re-checks the permission of whoever asked for it last
            job.requested_by_id = user_id
            if "user_id" in job.args:
                job.args = {**job.args, "user_id": user_id}
        job.save(
            update_fields=[
                "status", "reason", "attempts", "started_at", "finished_at",
                "request_id", "requested_by", "args",
            ]
        )  # fmt: skip
        _dispatch_on_commit(tenant=tenant, job_ids=[job.pk], lane=job_kind.lane)
    return job


def _dispatch_on_commit(*, tenant: Tenant, job_ids: list[int], lane: str) -> None:
    schema = tenant.schema_name
    cap = get_lane(lane).cap(tenant)
    transaction.on_commit(
        lambda: _dispatch(schema=schema, job_ids=job_ids, cap=cap, lane=lane)
    )


def _dispatch(*, schema: str, job_ids: list[int], cap: int, lane: str) -> None:
    """After commit: hand the jobs to the fair queue and send one token each.

    If the fair queue (Redis) cannot take them, the jobs end ``failed`` with the
    reason and the caller gets ``EnqueueFailed``: refused, never silently lost. Once
    they are in the fair queue they are kept: a token that cannot be sent (the
    broker is out) is sent later by the watchdog (``resend_missing_tokens``)."""
    try:
        fair_queue.push(
            schema=schema,
            job_refs=[str(pk) for pk in job_ids],
            cap=cap,
            queue=get_lane(lane).queue(),
        )
    except Exception as exc:
        logger.exception("could not queue jobs %s of %s", job_ids, schema)
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
        send_tokens(len(job_ids), lane=lane)
    except Exception as exc:  # noqa: BLE001 - the jobs are kept; the watchdog sends
        logger.warning(
            "jobs %s of %s are queued; their tokens could not be sent and will be "
            "sent by the watchdog: %s",
            job_ids,
            schema,
            exc,
        )


def requeue_unfinished(*, schema: str) -> int:
    """Hand the tenant's unfinished jobs that this pod's fair queue does not hold to
    it again; returns how many. The fair queue lives in the pod's Redis and the job
    rows in the tenant's schema: after a live move (the rows arrive with the schema,
    the queue stays behind) or a Redis that lost its data, queued jobs would wait
    forever. A job left ``running`` by a worker of the other pod is queued again
    (executors are idempotent); jobs the queue holds are left alone, so none runs
    twice at once. A hold left on this pod's queue by an earlier move away from it
    ends here: the tenant is back."""
    known = {}
    for lane in all_lanes():
        fair_queue.release(schema=schema, queue=lane.queue())
        known[lane.name] = fair_queue.known_refs(schema=schema, queue=lane.queue())
    with schema_context(schema):
        waiting = [
            job
            for job in BackgroundJob.objects.filter(
                status__in=[BackgroundJob.Status.QUEUED, BackgroundJob.Status.RUNNING]
            ).order_by("pk")
            if str(job.pk) not in known[_kind(job.kind).lane]
        ]
        BackgroundJob.objects.filter(
            pk__in=[job.pk for job in waiting], status=BackgroundJob.Status.RUNNING
        ).update(status=BackgroundJob.Status.QUEUED, started_at=None)
    if waiting:
        dispatch_jobs(waiting, schema=schema)
    return len(waiting)


def send_tokens(
    count: int, *, countdown: float | None = None, lane: str = PUBLISHING
) -> None:
    """Send ``count`` run-the-next-job tokens of a lane to its Celery queue (Celery
    retries broker errors with ``CELERY_TASK_PUBLISH_RETRY_POLICY``; while the
    broker's circuit breaker is open this raises ``DependencyUnavailable`` at once)."""
    queue = get_lane(lane).queue()
    for _ in range(count):
        # A token belongs to no tenant (it runs whichever job is next): the public
        # schema header spares the worker a tenant lookup per token.
        with breakers.for_broker().guard():
            app.send_task(
                RUN_NEXT_JOB_TASK,
                kwargs={"lane": lane},
                queue=queue,
                countdown=countdown,
                retry=True,
                headers={"_schema_name": settings.PUBLIC_SCHEMA_NAME},
            )


def resend_missing_tokens(*, limit: int = 1000) -> dict[str, int]:
    """The watchdog: in every lane, send a token for each job waiting in the fair
    queue beyond the tokens waiting in the broker (tokens lost with a broker outage,
    or never sent), and always one, so that jobs of a dead worker are reclaimed when
    their lease ends. Extra tokens are harmless (a token that finds nothing to do
    ends). Returns the tokens sent per lane."""
    sent = {}
    for lane in all_lanes():
        queue = lane.queue()
        fair_queue.unpark(queue)
        waiting_jobs = sum(fair_queue.pending_by_tenant(queue).values())
        with app.connection_for_write() as conn:
            waiting_tokens = (
                conn.default_channel.queue_declare(
                    queue=queue, durable=True, auto_delete=False
                ).message_count
                or 0
            )
        missing = max(1, min(limit, waiting_jobs - waiting_tokens))
        send_tokens(missing, lane=lane.name)
        sent[lane.name] = missing
    return sent


@dataclass(frozen=True)
class TokenOutcome:
    schema: str | None
    job_id: int | None
    status: str


def run_next_job(lane: str = PUBLISHING) -> TokenOutcome:
    """Spend one token of a lane: pop the lane's next job in fair order and run it.

    Keeps one token per job: tokens for jobs reclaimed from dead workers are sent;
    a token that found every pending tenant at its cap is parked until a job
    finishes (``tenants.jobs.fair_queue``); one that found only live leases comes
    back later instead of being dropped.
    """
    claim = fair_queue.pop(queue=get_lane(lane).queue(), park=True)
    if claim.reclaimed:
        logger.warning("reclaimed %s jobs whose worker died", claim.reclaimed)
        send_tokens(claim.reclaimed, lane=lane)
    if claim.schema is None:
        if claim.parked:
            return TokenOutcome(None, None, "parked")
        if claim.next_lease_expiry is not None:
            wait = max(0.2, claim.next_lease_expiry - time.time() + 0.2)
            send_tokens(1, countdown=wait, lane=lane)
            return TokenOutcome(None, None, "waiting-for-lease")
        return TokenOutcome(None, None, "idle")
    job_id = int(claim.job_ref)
    return run_claimed_job(
        schema=claim.schema, job_id=job_id, attempt=claim.attempt, lane=lane
    )


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


SLICED = "sliced"


def run_claimed_job(
    *, schema: str, job_id: int, attempt: int | None = None, lane: str = PUBLISHING
) -> TokenOutcome:
    """Run a leased job of a lane in its tenant's schema and record the outcome.
    ``attempt`` is the attempt number the fair queue counted (counted here on a
    retry).

    Raises ``RetryLater`` after a transient error with attempts left (the job keeps its
    in-flight slot until then).
    """
    tokens = bind_job_context(schema=schema)  # the job's log lines carry its tenant
    try:
        return _run_claimed_job(
            schema=schema,
            job_id=job_id,
            attempt=attempt,
            log_tokens=tokens,
            lane=lane,
        )
    finally:
        unbind_job_context(tokens)


def _run_claimed_job(
    *,
    schema: str,
    job_id: int,
    attempt: int | None,
    log_tokens: list,
    lane: str,
) -> TokenOutcome:
    Status = BackgroundJob.Status
    queue = get_lane(lane).queue()
    if not Tenant.objects.filter(schema_name=schema).exists():
        # a reference left behind by a tenant deleted or moved to another pod: never
        # run in a schema this pod does not serve (a move's copy being built, say)
        logger.warning("job %s of %s: no such tenant here, dropped", job_id, schema)
        fair_queue.finish(schema=schema, job_ref=str(job_id), queue=queue)
        return TokenOutcome(schema, job_id, "gone")
    if attempt is None:
        attempt = fair_queue.count_attempt(
            schema=schema, job_ref=str(job_id), queue=queue
        )
    with schema_context(schema):
        try:
            status = _run_in_schema(schema, job_id, attempt, log_tokens)
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
                    queue=queue,
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
    if status == SLICED:
        # back to the end of the tenant's list: other tenants run before its next
        # slice; the token it spent is replaced
        fair_queue.requeue(schema=schema, job_ref=str(job_id), queue=queue)
        send_tokens(1, lane=lane)
    else:
        if fair_queue.finish(schema=schema, job_ref=str(job_id), queue=queue):
            send_tokens(1, lane=lane)  # a token parked behind this job's slot
        if status != "gone":  # a job deleted before it ran did no work
            _meter(schema=schema, status=status)
    logger.info("job %s of %s: %s", job_id, schema, status)
    return TokenOutcome(schema, job_id, status)


def _meter(*, schema: str, status: str) -> None:
    """Count a finished job in the tenant's usage and the worker's metrics; a
    metering failure never fails the job."""
    try:
        labels = metrics.tenant_labels
        busiest = counters.record_publish_job(
            schema=schema,
            refresh_labels=metrics.top_tenants() if labels.refresh_due() else 0,
        )
        if busiest is not None:
            labels.update(busiest)
        metrics.record_publish_job(tenant=schema, outcome=status)
    except Exception:
        logger.exception("could not count job outcome %s of %s", status, schema)


def _run_in_schema(schema: str, job_id: int, attempt: int, log_tokens: list) -> str:
    """One transaction: lock the job row (a duplicate run of the same job waits, then
    sees it done), run the work, mark it done. While it runs, the admin shows it as
    running from the fair queue's in-flight set, which costs no extra commit."""
    Status = BackgroundJob.Status
    try:
        with transaction.atomic():
            job = BackgroundJob.objects.select_for_update().filter(pk=job_id).first()
            if job is None:
                return "gone"
            if job.request_id:
                # the rest of the run, its last line included, logs the click's id
                log_tokens.extend(
                    bind_job_context(schema=schema, request_id=job.request_id)
                )
            if job.status in (Status.DONE, Status.FAILED):
                return job.status
            job.attempts = attempt
            job.started_at = job.started_at or timezone.now()
            if attempt > settings.CMS_JOB_MAX_ATTEMPTS:
                raise JobError(
                    f"Gave up after {attempt - 1} attempts: the worker running it "
                    "stopped each time."
                )
            with background_work():
                outcome = _kind(job.kind).run(job)
            fields = [
                "status", "reason", "result", "attempts", "started_at",
                "progress_done", "progress_total",
            ]  # fmt: skip
            job.reason = ""
            if isinstance(outcome, NextSlice):
                job.result = outcome.result
                job.save(update_fields=fields)
                return SLICED
            job.result = outcome
            job.status = Status.DONE
            job.finished_at = timezone.now()
            job.save(update_fields=[*fields, "finished_at"])
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


# --- what editors see -------------------------------------------------------------


@dataclass(frozen=True)
class JobStatus:
    """A job as the editor's status panel and the API show it."""

    id: int
    kind: str
    label: str
    state: str  # queued, running, done, failed
    position: int | None  # jobs of the tenant waiting before it, when queued
    done: int
    total: int
    reason: str
    page_id: int | None

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "status": self.state,
            "position": self.position,
            "done": self.done,
            "total": self.total,
            "reason": self.reason,
            "page_id": self.page_id,
        }


def job_status(job: BackgroundJob) -> JobStatus:
    """Where a job of the current tenant stands: its row says queued/done/failed; the
    fair queue says whether a worker holds it (running) or how many jobs wait before
    it. Without Redis the row alone answers."""
    Status = BackgroundJob.Status
    state = job.status
    position = None
    if state == Status.QUEUED:
        schema = connection.schema_name
        try:
            queue = get_lane(_kind(job.kind).lane).queue()
            if str(job.pk) in fair_queue.in_flight(schema=schema, queue=queue):
                state = Status.RUNNING
            else:
                position = fair_queue.position(
                    schema=schema, job_ref=str(job.pk), queue=queue
                )
        except Exception:  # noqa: BLE001 - the status still shows without Redis
            logger.warning("fair queue unavailable for the status of job %s", job.pk)
        if state == Status.QUEUED and job.progress_done:
            state = Status.RUNNING  # between two slices
    return JobStatus(
        id=job.pk,
        kind=job.kind,
        label=job.label,
        state=str(state),
        position=position,
        done=job.progress_done,
        total=job.progress_total,
        reason=job.reason,
        page_id=job.page_id,
    )
