"""The Celery app. Tenant-aware: a task captures the schema of the connection that
enqueues it and runs in that schema on the worker (tenant-schemas-celery)."""

import os

from celery.signals import setup_logging
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms_project.settings.dev")

app = CeleryApp("cms_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Request id and tenant ride along in task headers (tenants.jobs.task_context).
import tenants.jobs.task_context  # noqa: E402, F401

# Workers write their metrics beside gunicorn's (tenants.observability.metrics);
# either may start first.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


@setup_logging.connect
def use_django_logging(**kwargs) -> None:
    """Workers log through settings.LOGGING (JSON or console, with the request id and
    tenant), not Celery's own format."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
