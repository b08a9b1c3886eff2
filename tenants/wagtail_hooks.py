"""Admin wiring of the tenants app: the tenant's Usage page, Settings -> Domains,
its audit log, its data export, and the staging-copy banner."""

from django.db import connection
from django.urls import path, reverse
from django.utils.html import format_html
from wagtail import hooks
from wagtail.admin.menu import MenuItem

from tenants.audit.views import tenant_audit_log
from tenants.backups import data_export_views
from tenants.domains.admin_views import tenant_domains_view
from tenants.metering.views import tenant_usage


@hooks.register("register_admin_urls")
def register_usage_url():
    return [
        path("usage/", tenant_usage, name="tenant_usage"),
        path("audit-log/", tenant_audit_log, name="tenant_audit_log"),
        path(
            "data-export/",
            data_export_views.data_export_index,
            name="tenant_data_export",
        ),
        path(
            "data-export/download/<str:signed>/",
            data_export_views.data_export_download,
            name="tenant_data_export_download",
        ),
        path("domains/", tenant_domains_view, name="tenant_domains"),
    ]


@hooks.register("register_admin_menu_item")
def register_usage_menu_item():
    return MenuItem("Usage", reverse("tenant_usage"), icon_name="table", order=850)


class AdminsOnlyMenuItem(MenuItem):
    def is_shown(self, request) -> bool:
        return request.user.is_superuser


@hooks.register("register_settings_menu_item")
def register_domains_menu_item():
    return AdminsOnlyMenuItem(
        "Domains", reverse("tenant_domains"), icon_name="site", order=150
    )


@hooks.register("register_admin_menu_item")
def register_audit_menu_item():
    return AdminsOnlyMenuItem(
        "Audit log", reverse("tenant_audit_log"), icon_name="history", order=860
    )


@hooks.register("register_admin_menu_item")
def register_data_export_menu_item():
    return AdminsOnlyMenuItem(
        "Export my data",
        reverse("tenant_data_export"),
        icon_name="download",
        order=870,
    )


@hooks.register("insert_global_admin_js")
def staging_copy_banner():
    """Editors of a staging copy must never mistake it for the live site."""
    original = getattr(getattr(connection, "tenant", None), "staging_of", "")
    if not original:
        return ""
    return format_html(
        '<div class="cms-staging-banner" role="status" style="position:fixed;'
        "top:0;left:0;right:0;z-index:1000;background:#b45309;color:#fff;"
        'text-align:center;padding:.35rem;font-weight:700">'
        "Staging copy of {}: changes here do not reach the live site.</div>",
        original,
    )
