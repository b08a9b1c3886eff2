"""Admin views of the content app."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from wagtail.models import Page

from content.tasks import publish_page_task


def publish_in_background(request: HttpRequest, page_id: int) -> HttpResponse:
    """Ask for confirmation (GET), then queue the page's latest revision for
    publishing on the shared worker pool (POST)."""
    page = get_object_or_404(Page, pk=page_id).specific
    if not page.permissions_for_user(request.user).can_publish():
        raise PermissionDenied
    if request.method == "POST":
        publish_page_task.delay(page.pk, user_id=request.user.pk)
        messages.success(request, f"“{page.title}” is queued for publishing.")
        return redirect(reverse("wagtailadmin_explore", args=[page.get_parent().pk]))
    return TemplateResponse(
        request, "content/admin/publish_in_background.html", {"page": page}
    )
