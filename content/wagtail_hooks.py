"""Admin wiring: URLs and menu entries of the content app, the page quota, and every
editor's publish going through the fair queue.

Wagtail publishes inside the request from several doors; each is taken over here at
the point where Wagtail has checked its permissions and saved the revision, so the
request records the intent and returns at once:
- the page editor's Publish (create and edit, reverting to a revision too):
  ``before_publish_page`` returns a redirect, so Wagtail skips its own publish;
- Unpublish (with or without subpages): ``before_unpublish_page``;
- the listing's bulk Publish / Unpublish: bulk actions of the same type replace
  Wagtail's;
- approving a workflow's last step: ``WAGTAIL_FINISH_WORKFLOW_ACTION``
  (``content.workflow``); copying with "publish copies": ``after_copy_page``;
- "Publish with subpages" in a page's menus opens ``publish_in_background``.
The page editor polls the job's status (``page_publish_status``) and shows it.
"""

import json

from django.contrib import messages
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from wagtail import hooks
from wagtail.admin.menu import MenuItem
from wagtail.admin.ui.menus.pages import PageMenuItem
from wagtail.admin.views.pages.bulk_actions.publish import PublishBulkAction
from wagtail.admin.views.pages.bulk_actions.unpublish import UnpublishBulkAction
from wagtail.admin.widgets.button import ListingButton
from wagtail.models import Page

from content.integrations.views import (
    api_token_revoke,
    api_tokens,
    webhook_endpoint,
    webhooks_index,
)
from content.jobs import EnqueueFailed, HourlyLimitExceeded, enqueue_jobs
from content.models import BackgroundJob
from content.page_cache import note_served_page
from content.publish_jobs import (
    pending_page_jobs,
    publish_job_args,
    queue_publish,
    queue_subtree,
    queue_unpublish,
    unpublish_job_args,
)
from content.views import (
    background_job_status,
    background_jobs,
    page_publish_status,
    publish_in_background,
    retry_background_job,
)
from tenants.tariffs.quotas import QuotaExceeded, check_pages, check_users

QUEUE_ERRORS = (HourlyLimitExceeded, EnqueueFailed)


@hooks.register("register_admin_urls")
def register_publishing_urls():
    return [
        path(
            "content/publish-in-background/<int:page_id>/",
            publish_in_background,
            name="content_publish_in_background",
        ),
        path("content/jobs/", background_jobs, name="content_background_jobs"),
        path(
            "content/jobs/<int:job_id>/status/",
            background_job_status,
            name="content_background_job_status",
        ),
        path(
            "content/jobs/<int:job_id>/retry/",
            retry_background_job,
            name="content_retry_background_job",
        ),
        path(
            "content/pages/<int:page_id>/publish-status/",
            page_publish_status,
            name="content_page_publish_status",
        ),
        path("content/api-tokens/", api_tokens, name="content_api_tokens"),
        path(
            "content/api-tokens/<int:grant_id>/revoke/",
            api_token_revoke,
            name="content_api_token_revoke",
        ),
        path("content/webhooks/", webhooks_index, name="content_webhooks"),
        path(
            "content/webhooks/<int:endpoint_id>/",
            webhook_endpoint,
            name="content_webhook_endpoint",
        ),
    ]


class AdminsOnlyMenuItem(MenuItem):
    def is_shown(self, request) -> bool:
        return request.user.is_superuser


@hooks.register("register_settings_menu_item")
def register_api_tokens_menu_item():
    return AdminsOnlyMenuItem(
        "API tokens", reverse("content_api_tokens"), icon_name="key", order=800
    )


@hooks.register("register_settings_menu_item")
def register_webhooks_menu_item():
    return AdminsOnlyMenuItem(
        "Webhooks", reverse("content_webhooks"), icon_name="link", order=810
    )


@hooks.register("register_reports_menu_item")
def register_background_jobs_menu_item():
    return MenuItem(
        "Background jobs",
        reverse("content_background_jobs"),
        icon_name="cogs",
        order=900,
    )


@hooks.register("before_serve_page", order=-100)
def remember_served_page(page, request, serve_args, serve_kwargs):
    """The page cache's policy asks about the served page's privacy."""
    note_served_page(request, page)


# --- the page editor's Publish and Unpublish --------------------------------------


def _edit_url(page: Page, job: BackgroundJob) -> str:
    return f"{reverse('wagtailadmin_pages:edit', args=[page.pk])}?cms_job={job.pk}"


@hooks.register("before_publish_page")
def publish_through_the_queue(request, page):
    """Wagtail has checked ``can_publish`` (and the edit lock) and saved the revision:
    queue its publish and go back to the editor, which shows the job's status."""
    if page.live and page.live_revision_id is None and page.first_published_at is None:
        # Wagtail's create view adds a page to be published as live (its model
        # default) and lets the publish fill it in: until the job runs it is a draft
        Page.objects.filter(pk=page.pk).update(live=False, has_unpublished_changes=True)
    revision = page.get_latest_revision()
    try:
        job = queue_publish(
            page_id=page.pk,
            revision_id=revision.pk if revision else None,
            user_id=request.user.pk,
        )
    except QUEUE_ERRORS as exc:
        messages.error(request, f"The page was saved but not published: {exc}")
        return redirect("wagtailadmin_pages:edit", page.pk)
    messages.success(
        request,
        f"“{page.get_admin_display_title()}” is saved and queued for publishing.",
    )
    return redirect(_edit_url(page, job))


def _next_or_explore(request, page: Page):
    next_url = request.POST.get("next") or request.GET.get("next")
    if next_url and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}
    ):
        return redirect(next_url)
    return redirect("wagtailadmin_explore", page.get_parent().pk)


@hooks.register("before_unpublish_page")
def unpublish_through_the_queue(request, page):
    """Wagtail's unpublish view checked ``can_unpublish``: queue it instead."""
    try:
        if request.POST.get("include_descendants"):
            queue_subtree(root_id=page.pk, publish=False, user_id=request.user.pk)
        else:
            queue_unpublish(page_id=page.pk, user_id=request.user.pk)
    except QUEUE_ERRORS as exc:
        messages.error(request, f"“{page.title}” was not unpublished: {exc}")
        return _next_or_explore(request, page)
    messages.success(request, f"“{page.title}” is queued for unpublishing.")
    return _next_or_explore(request, page)


# --- bulk actions in the listing --------------------------------------------------


class _QueuedBulkAction:
    """Wagtail's bulk action, queueing one job per selected page (all or none: one
    hourly allowance check) instead of publishing in the request."""

    def form_valid(self, form):
        try:
            return super().form_valid(form)
        except QUEUE_ERRORS as exc:
            messages.error(self.request, f"Nothing was queued: {exc}")
            return redirect(self.next_url)


class QueuedPublishBulkAction(_QueuedBulkAction, PublishBulkAction):
    @classmethod
    def execute_action(cls, objects, include_descendants=False, user=None, **kwargs):
        pages = list(objects)
        for page in pages:
            if page.get_latest_revision() is None:
                page.specific.save_revision(user=user)
        user_id = user.pk if user else None
        if include_descendants:
            kind, args = (
                "publish_subtree",
                [{"root_id": page.pk, "user_id": user_id} for page in pages],
            )
            labels = [f"Publish “{page.title}” and its subpages" for page in pages]
        else:
            kind = "publish"
            args = [publish_job_args(page, user_id=user_id) for page in pages]
            labels = [f"Publish “{page.title}”" for page in pages]
        enqueue_jobs(
            kind=kind,
            args_list=args,
            labels=labels,
            user_id=user_id,
            page_ids=[page.pk for page in pages],
        )
        return len(pages), 0

    def get_success_message(self, num_parent_objects, num_child_objects):
        if self.cleaned_form.cleaned_data["include_descendants"]:
            return (
                f"{num_parent_objects} page(s) and their subpages queued for "
                "publishing."
            )
        return f"{num_parent_objects} page(s) queued for publishing."


class QueuedUnpublishBulkAction(_QueuedBulkAction, UnpublishBulkAction):
    @classmethod
    def execute_action(cls, objects, include_descendants=False, user=None, **kwargs):
        pages = list(objects)
        user_id = user.pk if user else None
        if include_descendants:
            kind, args = (
                "unpublish_subtree",
                [{"root_id": page.pk, "user_id": user_id} for page in pages],
            )
            labels = [f"Unpublish “{page.title}” and its subpages" for page in pages]
        else:
            kind = "unpublish"
            args = [unpublish_job_args(page, user_id=user_id) for page in pages]
            labels = [f"Unpublish “{page.title}”" for page in pages]
        enqueue_jobs(
            kind=kind,
            args_list=args,
            labels=labels,
            user_id=user_id,
            page_ids=[page.pk for page in pages],
        )
        return len(pages), 0

    def get_success_message(self, num_parent_objects, num_child_objects):
        return f"{num_parent_objects} page(s) queued for unpublishing."


# Registered after Wagtail's own (same action type): the registry keeps the last.
hooks.register("register_bulk_action", QueuedPublishBulkAction, order=100)
hooks.register("register_bulk_action", QueuedUnpublishBulkAction, order=100)


# --- copy with "publish copies" ----------------------------------------------------


@hooks.register("before_copy_page")
def enforce_page_quota_on_copy(request, page):
    try:
        check_pages(request.tenant, adding=page.get_descendants(inclusive=True).count())
    except QuotaExceeded as exc:
        messages.error(request, str(exc))
        return redirect("wagtailadmin_explore", page.get_parent().pk)
    return None


# Set on a copy request whose "publish copies" box was ticked: Wagtail then copies
# the pages as drafts and ``publish_copies_through_the_queue`` queues their publish.
PUBLISH_COPIES = "cms_publish_copies"


@hooks.register("before_copy_page")
def copy_as_drafts(request, page):
    """Take "publish copies" out of the form before Wagtail sees it (Wagtail would
    copy live pages live, inside the request)."""
    if request.method == "POST" and request.POST.get("publish_copies"):
        post = request.POST.copy()
        post.pop("publish_copies")
        request.POST = post
        setattr(request, PUBLISH_COPIES, True)
    return None


@hooks.register("after_copy_page")
def publish_copies_through_the_queue(request, page, new_page):
    """Queue a publish of each copy whose original was live, if the user may
    publish under the new parent (Wagtail's rule for "publish copies")."""
    if not getattr(request, PUBLISH_COPIES, False) or new_page.alias_of_id:
        return None
    parent = new_page.get_parent()
    if not parent.permissions_for_user(request.user).can_publish_subpage():
        return None
    originals = list(page.get_descendants(inclusive=True).order_by("path"))
    copies = list(new_page.get_descendants(inclusive=True).order_by("path"))
    if len(originals) != len(copies):
        copies, originals = copies[:1], originals[:1]  # copied without subpages
    to_publish = [
        copy for original, copy in zip(originals, copies, strict=True) if original.live
    ]
    if not to_publish:
        return None
    try:
        enqueue_jobs(
            kind="publish",
            args_list=[
                publish_job_args(copy, user_id=request.user.pk) for copy in to_publish
            ],
            labels=[f"Publish “{copy.title}” (copy)" for copy in to_publish],
            user_id=request.user.pk,
            page_ids=[copy.pk for copy in to_publish],
        )
    except QUEUE_ERRORS as exc:
        messages.error(request, f"The copies were not queued for publishing: {exc}")
    else:
        messages.success(
            request, f"{len(to_publish)} copied page(s) queued for publishing."
        )
    return None


# --- the listing's marker and menus -----------------------------------------------


class PublishWithSubpagesButton(PageMenuItem):
    label = "Publish with subpages…"
    icon_name = "upload"
    url_name = "content_publish_in_background"

    def is_shown(self, user):
        return self.page.depth > 1 and (
            self.page.permissions_for_user(user).can_publish()
        )


@hooks.register("register_page_listing_more_buttons")
def publish_with_subpages_listing_button(page, user, next_url=None):
    yield PublishWithSubpagesButton(page=page, priority=45)


@hooks.register("register_page_header_buttons")
def publish_with_subpages_header_button(page, user, view_name, next_url=None):
    yield PublishWithSubpagesButton(page=page, priority=62)


@hooks.register("register_page_listing_buttons")
def pending_publish_marker(page, user, next_url=None):
    """Pages with a publish or unpublish waiting in the queue say so in the listing."""
    job = pending_page_jobs([page.pk]).get(page.pk)
    if job is not None:
        verb = "Unpublishing" if job.kind.startswith("unpublish") else "Publishing"
        yield ListingButton(
            f"{verb}…",
            url=reverse("content_background_jobs"),
            classname="cms-publish-pending",
            priority=1,
            attrs={"title": job.label, "data-cms-job": str(job.pk)},
        )


# --- the editor's status panel ------------------------------------------------------


@hooks.register("insert_editor_js")
def publish_status_panel():
    """A "Publishing…" panel in the page editor, polling the page's job status."""
    # our own template; the values in it are JSON-encoded URLs
    return mark_safe(
        render_to_string(
            "content/admin/publish_status.html",
            {
                "status_url_template": json.dumps(
                    reverse("content_page_publish_status", args=[0]).replace(
                        "/0/", "/{id}/"
                    )
                ),
                "jobs_url": json.dumps(reverse("content_background_jobs")),
            },
        )
    )


# --- quotas -----------------------------------------------------------------------


@hooks.register("before_create_page")
def enforce_page_quota(request, parent_page, page_class):
    try:
        check_pages(request.tenant)
    except QuotaExceeded as exc:
        messages.error(request, str(exc))
        return redirect("wagtailadmin_explore", parent_page.pk)
    return None


@hooks.register("before_create_user")
def enforce_user_quota(request):
    try:
        check_users(request.tenant)
    except QuotaExceeded as exc:
        messages.error(request, str(exc))
        return redirect("wagtailusers_users:index")
    return None
