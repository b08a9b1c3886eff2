"""Publishing as background jobs: what editors (the page editor, the listing's bulk
actions, workflow approval, the write API) and the scheduled sweep queue, and how a
worker runs each kind. Executors are idempotent (``content.publishing``), which
``content.jobs`` relies on for exactly-once results after a crash.

The queueing functions are the web request's part of a publish: the caller has checked
Wagtail's permissions and saved the revision; they record the intent (the page, its
path, the revision and the user) and return at once. The executors check the
permission again for the user recorded at enqueue. ``register_job_kinds`` is called
by ``ContentConfig.ready``.
"""

from django.conf import settings
from wagtail.models import Page

from content.jobs import BackgroundJob, JobError, NextSlice, enqueue_job
from content.publishing import (
    PublishError,
    publish_page,
    publish_scheduled,
    publish_subtree_slice,
    subtree_size,
    unpublish_page,
    unpublish_subtree_slice,
)
from content.task_backend import (
    WAGTAIL_TASK_KIND,
    hand_over_pending_tasks,
    run_after,
    run_wagtail_task,
)
from tenants.jobs.kinds import register_job_kind

PUBLISH_KINDS = ("publish", "workflow_publish", "publish_subtree")
UNPUBLISH_KINDS = ("unpublish", "unpublish_subtree")


def _page_id(job: BackgroundJob, name: str = "page_id") -> int:
    value = job.args.get(name)
    if not isinstance(value, int):
        raise JobError(f"Job {job.pk} has no valid {name}.")
    return value


def run_publish(job: BackgroundJob) -> dict:
    """An editor's publish: the page-level permission and lock are checked again for
    the user who clicked."""
    try:
        outcome = publish_page(
            page_id=_page_id(job),
            revision_id=job.args.get("revision_id"),
            user_id=job.requested_by_id or job.args.get("user_id"),
            expected_path=job.args.get("url_path"),
        )
    except PublishError as exc:
        raise JobError(str(exc)) from exc
    return {
        "revision_id": outcome.revision_id,
        "already_live": outcome.already_live,
        "superseded": outcome.superseded,
    }


def run_workflow_publish(job: BackgroundJob) -> dict:
    """The last step of a workflow was approved: publish as the approver, with the
    check Wagtail makes when a workflow finishes (the publish action's own)."""
    try:
        outcome = publish_page(
            page_id=_page_id(job),
            revision_id=job.args.get("revision_id"),
            user_id=job.requested_by_id or job.args.get("user_id"),
            check_page_permission=False,
        )
    except PublishError as exc:
        raise JobError(str(exc)) from exc
    return {"revision_id": outcome.revision_id, "already_live": outcome.already_live}


def run_unpublish(job: BackgroundJob) -> dict:
    try:
        changed = unpublish_page(
            page_id=_page_id(job),
            user_id=job.requested_by_id or job.args.get("user_id"),
            expected_path=job.args.get("url_path"),
        )
    except PublishError as exc:
        raise JobError(str(exc)) from exc
    return {"changed": changed}


def _run_subtree_slice(job: BackgroundJob, *, publish: bool) -> dict | NextSlice:
    """One slice of a subtree (``CMS_PUBLISH_SLICE_PAGES`` pages): its progress is
    committed with it, and the job takes its next turn in the fair queue."""
    root_id = _page_id(job, "root_id")
    state = dict(job.result or {})
    try:
        if not job.progress_total:
            job.progress_total = subtree_size(root_id=root_id)
        run_slice = publish_subtree_slice if publish else unpublish_subtree_slice
        outcome = run_slice(
            root_id=root_id,
            after=state.get("after", ""),
            size=settings.CMS_PUBLISH_SLICE_PAGES,
            user_id=job.requested_by_id or job.args.get("user_id"),
        )
    except PublishError as exc:
        raise JobError(str(exc)) from exc
    for name in ("changed", "unchanged", "skipped"):
        state[name] = state.get(name, 0) + getattr(outcome, name)
    job.progress_done = state["changed"] + state["unchanged"] + state["skipped"]
    job.progress_total = max(job.progress_total, job.progress_done)
    if outcome.next_after is None:
        state.pop("after", None)
        job.progress_total = job.progress_done
        return state
    state["after"] = outcome.next_after
    return NextSlice(result=state)


def run_publish_subtree(job: BackgroundJob) -> dict | NextSlice:
    return _run_subtree_slice(job, publish=True)


def run_unpublish_subtree(job: BackgroundJob) -> dict | NextSlice:
    return _run_subtree_slice(job, publish=False)


def run_publish_scheduled(job: BackgroundJob) -> dict:
    return {"output": publish_scheduled()[-2000:]}


def _then_handed_over_tasks(run):
    """The job runs the Wagtail tasks its request handed over (``_enqueue_page_job``)
    together with its own, after its commit."""

    def run_job(job: BackgroundJob):
        outcome = run(job)
        run_after(job.args.get("wagtail_tasks", []))
        return outcome

    return run_job


def register_job_kinds() -> None:
    """Tell the fair queue what each kind of content job runs (``ContentConfig``)."""
    register_job_kind("publish", run=_then_handed_over_tasks(run_publish))
    register_job_kind(
        "workflow_publish", run=_then_handed_over_tasks(run_workflow_publish)
    )
    register_job_kind("unpublish", run=_then_handed_over_tasks(run_unpublish))
    register_job_kind("publish_subtree", run=run_publish_subtree)
    register_job_kind("unpublish_subtree", run=run_unpublish_subtree)
    # The platform's own work, not the tenant's request: it does not count against
    # publish_jobs_per_hour (scheduled pages must go live whatever editors did).
    register_job_kind(
        "publish_scheduled", run=run_publish_scheduled, counts_against_plan=False
    )
    register_job_kind(
        WAGTAIL_TASK_KIND, run=run_wagtail_task, counts_against_plan=False, listed=False
    )


# --- the request's part: record the intent ------------------------------------------


def _title(page: Page | None, page_id: int) -> str:
    return page.title if page else f"page {page_id}"


def publish_job_args(
    page: Page, *, revision_id: int | None = None, user_id: int | None
) -> dict:
    """What a publish job records: the page, where it was (a move fails the job), the
    revision (None: the latest when it runs) and who asked."""
    return {
        "page_id": page.pk,
        "revision_id": revision_id,
        "user_id": user_id,
        "url_path": page.url_path,
    }


def unpublish_job_args(page: Page, *, user_id: int | None) -> dict:
    return {"page_id": page.pk, "user_id": user_id, "url_path": page.url_path}


def _enqueue_page_job(*, kind: str, args: dict, **fields) -> BackgroundJob:
    """Queue a job that saves one page, taking over the Wagtail tasks (index
    updates) the request's transaction has caused so far: the job causes the same
    ones when it saves the page, and runs each once."""
    tasks = hand_over_pending_tasks()
    if tasks:
        args = {**args, "wagtail_tasks": tasks}
    return enqueue_job(kind=kind, args=args, **fields)


def queue_publish(
    *, page_id: int, revision_id: int | None = None, user_id: int | None = None
) -> BackgroundJob:
    """Queue a publish of a page's revision (its latest by default) for the current
    tenant. The caller has checked that the user may publish it."""
    page = Page.objects.filter(pk=page_id).first()
    return _enqueue_page_job(
        kind="publish",
        args=publish_job_args(page, revision_id=revision_id, user_id=user_id)
        if page
        else {"page_id": page_id, "revision_id": revision_id, "user_id": user_id},
        label=f"Publish “{_title(page, page_id)}”",
        user_id=user_id,
        page_id=page_id,
    )


def queue_workflow_publish(
    *, page_id: int, revision_id: int | None, user_id: int | None
) -> BackgroundJob:
    """Queue the publish that ends an approved workflow."""
    page = Page.objects.filter(pk=page_id).first()
    return _enqueue_page_job(
        kind="workflow_publish",
        args={"page_id": page_id, "revision_id": revision_id, "user_id": user_id},
        label=f"Publish “{_title(page, page_id)}” (workflow approved)",
        user_id=user_id,
        page_id=page_id,
    )


def queue_unpublish(*, page_id: int, user_id: int | None = None) -> BackgroundJob:
    page = Page.objects.filter(pk=page_id).first()
    return _enqueue_page_job(
        kind="unpublish",
        args=unpublish_job_args(page, user_id=user_id)
        if page
        else {"page_id": page_id, "user_id": user_id},
        label=f"Unpublish “{_title(page, page_id)}”",
        user_id=user_id,
        page_id=page_id,
    )


def queue_subtree(
    *, root_id: int, publish: bool, user_id: int | None = None
) -> BackgroundJob:
    """Queue publishing (or unpublishing) a page and all its descendants: one job,
    run in slices that take their turns in the fair queue."""
    page = Page.objects.filter(pk=root_id).first()
    verb = "Publish" if publish else "Unpublish"
    return enqueue_job(
        kind="publish_subtree" if publish else "unpublish_subtree",
        args={"root_id": root_id, "user_id": user_id},
        label=f"{verb} “{_title(page, root_id)}” and its subpages",
        user_id=user_id,
        page_id=root_id,
    )


def pending_page_jobs(page_ids) -> dict[int, BackgroundJob]:
    """The newest queued publish or unpublish job of each of these pages (the page
    listing's "publishing" marker, the editor's status panel)."""
    jobs = BackgroundJob.objects.filter(
        page_id__in=list(page_ids),
        kind__in=PUBLISH_KINDS + UNPUBLISH_KINDS,
        status__in=[BackgroundJob.Status.QUEUED, BackgroundJob.Status.RUNNING],
    ).order_by("page_id", "-pk")
    found: dict[int, BackgroundJob] = {}
    for job in jobs:
        found.setdefault(job.page_id, job)
    return found
