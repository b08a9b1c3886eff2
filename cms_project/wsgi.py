"""WSGI entry point for gunicorn: one shared worker pool serves every tenant."""

import os

from django.apps import apps
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms_project.settings.dev")

application = get_wsgi_application()

# Cached public pages are answered before Django's handler (content.edge). The
# benchmarks' plain and vanilla set-ups load other settings through this module.
if apps.is_installed("django_tenants") and apps.is_installed("content"):
    from content.edge import PageCacheEdge
    from tenants.resilience.wsgi import OutageGuard

    application = OutageGuard(PageCacheEdge(application))
