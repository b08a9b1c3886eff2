"""WSGI entry point for gunicorn: one shared worker pool serves every tenant."""

import os

from django.apps import apps
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms_project.settings.dev")

application = get_wsgi_application()

# Cached public pages are answered before Django's handler (tenants.request_path.edge).
# The benchmarks' plain and vanilla set-ups load other settings through this module.
if apps.is_installed("django_tenants") and apps.is_installed("content"):
    from tenants.request_path.edge import PageCacheEdge
    from tenants.resilience.wsgi import OutageGuard

    application = OutageGuard(PageCacheEdge(application))

# X-Forwarded-Proto is believed only from CMS_TRUSTED_PROXIES, edge included.
from tenants.request_path.forwarded_proto import ForwardedProtoGuard  # noqa: E402

application = ForwardedProtoGuard(application)
