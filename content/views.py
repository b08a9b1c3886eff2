"""Admin views of the content app."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from wagtail.models import Page

from content.jobs import EnqueueFailed, HourlyLimitExceeded
from content.models import BackgroundJob
from content.publish_jobs import queue_publish, queue_subtree, queue_unpublish
from tenants.jobs import fair_queue

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
            permissions.can_publish()
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


def background_jobs(request: HttpRequest) -> HttpResponse:
    """This tenant's background jobs (the table lives in its schema: no other
    tenant's job can appear)."""
    jobs = list(BackgroundJob.objects.select_related("requested_by")[:200])
    try:
        running = fair_queue.in_flight(schema=connection.schema_name)
    except Exception:  # noqa: BLE001 - the list still shows without Redis
        running = set()
    for job in jobs:
        # a job being run is "queued" in its row until its transaction commits; the
        # fair queue knows which ones a worker holds
        in_flight = job.status == BackgroundJob.Status.QUEUED and str(job.pk) in running
        job.shown_status = "Running" if in_flight else job.get_status_display()
    return TemplateResponse(
        request, "content/admin/background_jobs.html", {"jobs": jobs}
    )
