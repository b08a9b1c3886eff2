"""Admin wiring of the tenants app: the tenant's Usage page."""

from django.urls import path, reverse
from wagtail import hooks
from wagtail.admin.menu import MenuItem

from tenants.metering.views import tenant_usage


@hooks.register("register_admin_urls")
def register_usage_url():
    return [path("usage/", tenant_usage, name="tenant_usage")]


@hooks.register("register_admin_menu_item")
def register_usage_menu_item():
    return MenuItem("Usage", reverse("tenant_usage"), icon_name="table", order=850)
