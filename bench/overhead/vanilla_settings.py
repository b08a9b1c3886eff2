"""Benchmark (b): the same Wagtail pages as a single-tenant site, without
django-tenants, on a database of its own.

Built from the production settings so that everything but tenancy is the same:
the plain PostgreSQL backend (no ``SET search_path``), no tenant gate, admission,
page cache or other tenant middleware, Wagtail's own redirect middleware, cache keys
without the schema. The ``tenants`` app stays installed only because ``content``
imports its models; its tables are not even created.
"""

from cms_project.settings.production import *  # noqa: F403
from cms_project.settings.production import (
    CACHES,
    DATABASES,
    INSTALLED_APPS,
    MIDDLEWARE,
)

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "django_tenants"]
DATABASES = {
    "default": {**DATABASES["default"], "ENGINE": "django.db.backends.postgresql"}
}
DATABASE_ROUTERS: list[str] = []
# The tenants app's migrations are schema-aware; its tables are not needed here.
MIGRATION_MODULES = {"tenants": None}
MIDDLEWARE = [
    "wagtail.contrib.redirects.middleware.RedirectMiddleware"
    if name == "content.middleware.TenantRedirectMiddleware"
    else name
    for name in MIDDLEWARE
    if not name.startswith("tenants.")
]
ROOT_URLCONF = "bench.overhead.vanilla_urls"
# Wagtail's background work in the calling process, as a plain Wagtail site has it
# (the product's backend queues it on Celery in the tenant's schema).
TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
CACHES = {
    alias: {
        key: value
        for key, value in config.items()
        if key not in ("KEY_FUNCTION", "REVERSE_KEY_FUNCTION")
    }
    | {"KEY_PREFIX": "bench-vanilla"}
    for alias, config in CACHES.items()
}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
