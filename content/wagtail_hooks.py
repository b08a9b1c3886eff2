"""Admin wiring: URLs and menu entries of the content app."""

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import path, reverse
from wagtail import hooks
from wagtail.admin.menu import MenuItem

from content.page_cache import note_served_page
from content.views import background_jobs, publish_in_background
from tenants.tariffs.quotas import QuotaExceeded, check_pages, check_users


@hooks.register("register_admin_urls")
def register_publishing_urls():
    return [
        path(
            "content/publish-in-background/<int:page_id>/",
            publish_in_background,
            name="content_publish_in_background",
        ),
        path("content/jobs/", background_jobs, name="content_background_jobs"),
    ]


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


@hooks.register("before_create_page")
def enforce_page_quota(request, parent_page, page_class):
    try:
        check_pages(request.tenant)
    except QuotaExceeded as exc:
        messages.error(request, str(exc))
        return redirect("wagtailadmin_explore", parent_page.pk)
    return None


@hooks.register("before_copy_page")
def enforce_page_quota_on_copy(request, page):
    try:
        check_pages(request.tenant, adding=page.get_descendants(inclusive=True).count())
    except QuotaExceeded as exc:
        messages.error(request, str(exc))
        return redirect("wagtailadmin_explore", page.get_parent().pk)
    return None


@hooks.register("before_create_user")
def enforce_user_quota(request):
    try:
        check_users(request.tenant)
    except QuotaExceeded as exc:
        messages.error(request, str(exc))
        return redirect("wagtailusers_users:index")
    return None
