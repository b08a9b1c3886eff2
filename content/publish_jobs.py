"""Publishing as background jobs: what editors (and the scheduled sweep) queue, and
how a worker runs each kind. Executors are idempotent (``content.publishing``), which
``content.jobs`` relies on for exactly-once results after a crash."""

from wagtail.models import Page

from content.jobs import BackgroundJob, JobError, enqueue_job, job_kind
from content.publishing import (
    PublishError,
    publish_page,
    publish_scheduled,
    publish_subtree,
    unpublish_page,
    unpublish_subtree,
)


def _page_id(job: BackgroundJob, name: str = "page_id") -> int:
    value = job.args.get(name)
    if not isinstance(value, int):
        raise JobError(f"Job {job.pk} has no valid {name}.")
    return value


@job_kind("publish")
def run_publish(job: BackgroundJob) -> dict:
    try:
        outcome = publish_page(
            page_id=_page_id(job),
            revision_id=job.args.get("revision_id"),
            user_id=job.requested_by_id,
        )
    except PublishError as exc:
        raise JobError(str(exc)) from exc
    return {"revision_id": outcome.revision_id, "already_live": outcome.already_live}


@job_kind("unpublish")
def run_unpublish(job: BackgroundJob) -> dict:
    try:
        changed = unpublish_page(page_id=_page_id(job), user_id=job.requested_by_id)
    except PublishError as exc:
        raise JobError(str(exc)) from exc
    return {"changed": changed}


@job_kind("publish_subtree")
def run_publish_subtree(job: BackgroundJob) -> dict:
    try:
        outcome = publish_subtree(
            root_id=_page_id(job, "root_id"), user_id=job.requested_by_id
        )
    except PublishError as exc:
        raise JobError(str(exc)) from exc
    return {"changed": outcome.changed, "unchanged": outcome.unchanged}


@job_kind("unpublish_subtree")
def run_unpublish_subtree(job: BackgroundJob) -> dict:
    try:
        outcome = unpublish_subtree(
            root_id=_page_id(job, "root_id"), user_id=job.requested_by_id
        )
    except PublishError as exc:
        raise JobError(str(exc)) from exc
    return {"changed": outcome.changed, "unchanged": outcome.unchanged}


# The sweep is the platform's own work, not the tenant's request: it does not count
# against publish_jobs_per_hour (scheduled pages must go live whatever editors did).
@job_kind("publish_scheduled", counts_against_plan=False)
def run_publish_scheduled(job: BackgroundJob) -> dict:
    return {"output": publish_scheduled()[-2000:]}


def queue_publish(
    *, page_id: int, revision_id: int | None = None, user_id: int | None = None
) -> BackgroundJob:
    """Queue a publish of a page's revision (its latest by default) for the current
    tenant."""
    page = Page.objects.filter(pk=page_id).first()
    title = page.title if page else f"page {page_id}"
    return enqueue_job(
        kind="publish",
        args={"page_id": page_id, "revision_id": revision_id},
        label=f"Publish “{title}”",
        user_id=user_id,
    )


def queue_unpublish(*, page_id: int, user_id: int | None = None) -> BackgroundJob:
    page = Page.objects.filter(pk=page_id).first()
    title = page.title if page else f"page {page_id}"
    return enqueue_job(
        kind="unpublish",
        args={"page_id": page_id},
        label=f"Unpublish “{title}”",
        user_id=user_id,
    )


def queue_subtree(
    *, root_id: int, publish: bool, user_id: int | None = None
) -> BackgroundJob:
    """Queue publishing (or unpublishing) a page and all its descendants: one job."""
    page = Page.objects.filter(pk=root_id).first()
    title = page.title if page else f"page {root_id}"
    verb = "Publish" if publish else "Unpublish"
    return enqueue_job(
        kind="publish_subtree" if publish else "unpublish_subtree",
        args={"root_id": root_id},
        label=f"{verb} “{title}” and its subpages",
        user_id=user_id,
    )
