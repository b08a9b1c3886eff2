"""Admin wiring: URLs and menu entries of the content app."""

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import path, reverse
from wagtail import hooks
from wagtail.admin.menu import MenuItem

from content.integrations.views import (
    api_token_revoke,
    api_tokens,
    webhook_endpoint,
    webhooks_index,
)
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
