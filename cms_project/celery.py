"""The Celery app. Tenant-aware: a task captures the schema of the connection that
enqueues it and runs in that schema on the worker (tenant-schemas-celery)."""

import os

from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms_project.settings.dev")

app = CeleryApp("cms_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
