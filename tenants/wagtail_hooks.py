"""Admin wiring of the tenants app: the tenant's Usage and Settings -> Domains pages."""

from django.urls import path, reverse
from wagtail import hooks
from wagtail.admin.menu import MenuItem

from tenants.domains.admin_views import tenant_domains_view
from tenants.metering.views import tenant_usage


@hooks.register("register_admin_urls")
def register_usage_url():
    return [
        path("usage/", tenant_usage, name="tenant_usage"),
        path("domains/", tenant_domains_view, name="tenant_domains"),
    ]


@hooks.register("register_admin_menu_item")
def register_usage_menu_item():
    return MenuItem("Usage", reverse("tenant_usage"), icon_name="table", order=850)


class AdministratorsMenuItem(MenuItem):
    def is_shown(self, request) -> bool:
        return request.user.is_superuser


@hooks.register("register_settings_menu_item")
def register_domains_menu_item():
    return AdministratorsMenuItem(
        "Domains", reverse("tenant_domains"), icon_name="site", order=150
    )
