"""Admin views of the content app: queueing a publish of a page (and its subpages),
the tenant's background jobs with Retry, and the small JSON status endpoints the
page editor polls."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from wagtail.models import Page

from content.jobs import (
    EnqueueFailed,
    HourlyLimitExceeded,
    NotRetryable,
    job_status,
    retry_job,
)
from content.models import BackgroundJob
from content.publish_jobs import (
    PUBLISH_KINDS,
    UNPUBLISH_KINDS,
    queue_publish,
    queue_subtree,
    queue_unpublish,
)
from tenants.jobs.kinds import unlisted_kinds

ACTIONS = {
    "publish": "is queued for publishing",
    "unpublish": "is queued for unpublishing",
    "publish_subtree": "and its subpages are queued for publishing",
    "unpublish_subtree": "and its subpages are queued for unpublishing",
}


def publish_in_background(request: HttpRequest, page_id: int) -> HttpResponse:
    """Ask what to do (GET), then queue it on the shared worker pool (POST): publish
    the latest revision, unpublish, or either for the whole subtree."""
    page = get_object_or_404(Page, pk=page_id).specific
    permissions = page.permissions_for_user(request.user)
    if request.method == "POST":
        action = request.POST.get("action", "publish")
        if action not in ACTIONS:
            messages.error(request, f"Unknown action {action!r}.")
            return redirect(request.path)
        allowed = (
            permissions.can_publish() and not permissions.page_locked()
            if action.startswith("publish")
            else permissions.can_unpublish()
        )
        if not allowed:
            raise PermissionDenied
        user_id = request.user.pk
        try:
            if action == "publish":
                queue_publish(page_id=page.pk, user_id=user_id)
            elif action == "unpublish":
                queue_unpublish(page_id=page.pk, user_id=user_id)
            else:
                queue_subtree(
                    root_id=page.pk,
                    publish=action == "publish_subtree",
                    user_id=user_id,
                )
        except (HourlyLimitExceeded, EnqueueFailed) as exc:
            messages.error(request, str(exc))
            return redirect(request.path)
        messages.success(request, f"“{page.title}” {ACTIONS[action]}.")
        return redirect(reverse("wagtailadmin_explore", args=[page.get_parent().pk]))
    if not permissions.can_publish():
        raise PermissionDenied
    return TemplateResponse(
        request, "content/admin/publish_in_background.html", {"page": page}
    )


def _listed_jobs():
    return BackgroundJob.objects.exclude(kind__in=unlisted_kinds())


def background_jobs(request: HttpRequest) -> HttpResponse:
    """This tenant's background jobs (the table lives in its schema: no other
    tenant's job can appear), with progress and a Retry button on failed ones."""
    jobs = list(_listed_jobs().select_related("requested_by")[:200])
    for job in jobs:
        status = job_status(job)
        job.shown_status = status.state.capitalize()
        job.position = status.position
    return TemplateResponse(
        request, "content/admin/background_jobs.html", {"jobs": jobs}
    )


def _may_act_on(job: BackgroundJob, user) -> bool:
    """Retrying a page's job needs the permission the job itself needs; the
    platform's own jobs (no page) are for administrators."""
    if job.page_id is None:
        return user.is_superuser
    page = Page.objects.filter(pk=job.page_id).first()
    if page is None:
        return user.is_superuser
    permissions = page.permissions_for_user(user)
    if job.kind in UNPUBLISH_KINDS:
        return permissions.can_unpublish()
    return permissions.can_publish() and not permissions.page_locked()


@require_POST
def retry_background_job(request: HttpRequest, job_id: int) -> HttpResponse:
    """Queue a failed job again (Reports → Background jobs)."""
    job = get_object_or_404(_listed_jobs(), pk=job_id)
    if not _may_act_on(job, request.user):
        raise PermissionDenied
    try:
        retry_job(job_id=job.pk, user_id=request.user.pk)
    except (NotRetryable, HourlyLimitExceeded, EnqueueFailed) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"“{job}” is queued again.")
    return redirect("content_background_jobs")


def _can_see(job: BackgroundJob, user) -> bool:
    if job.page_id is None:
        return user.is_superuser or job.requested_by_id == user.pk
    page = Page.objects.filter(pk=job.page_id).first()
    if page is None:
        return user.is_superuser or job.requested_by_id == user.pk
    return page.permissions_for_user(user).can_edit()


@require_GET
def background_job_status(request: HttpRequest, job_id: int) -> JsonResponse:
    """One job's status as JSON: queued (with its position in the tenant's queue),
    running (with pages done / total), done, or failed with the reason."""
    job = BackgroundJob.objects.filter(pk=job_id).first()
    if job is None or not _can_see(job, request.user):
        return JsonResponse(
            {"error": "not_found", "message": f"No job with id {job_id}."}, status=404
        )
    return JsonResponse(job_status(job).as_json())


@require_GET
def page_publish_status(request: HttpRequest, page_id: int) -> JsonResponse:
    """The newest publish or unpublish job of a page (the editor's status panel):
    ``{"job": null}`` when it has none."""
    page = Page.objects.filter(pk=page_id).first()
    if page is None or not page.permissions_for_user(request.user).can_edit():
        return JsonResponse(
            {"error": "not_found", "message": f"No page with id {page_id}."},
            status=404,
        )
    job = (
        BackgroundJob.objects.filter(
            page_id=page_id, kind__in=PUBLISH_KINDS + UNPUBLISH_KINDS
        )
        .order_by("-pk")
        .first()
    )
    return JsonResponse(
        {
            "job": job_status(job).as_json() if job else None,
            "live": page.live,
            "live_revision_id": page.live_revision_id,
        }
    )
