"""The Celery app. Tenant-aware: a task captures the schema of the connection that
enqueues it and runs in that schema on the worker (tenant-schemas-celery)."""

import os

from celery.signals import setup_logging, worker_init
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


@worker_init.connect
def yield_cpu_to_web(**kwargs) -> None:
    """Background work (publishing, webhooks, backups) runs below the web pool's
    priority: where a worker shares cores with gunicorn, a visitor's request is
    not queued behind a publish for the CPU (in bench/publish_fairness a tenant's
    click-to-live behind another's backlog shares two cores with two busy publish
    workers). Set in the main process before the pool forks, so every child
    inherits it; never lowered (an operator's ``Nice=`` above it stays)."""
    from django.conf import settings

    wanted = settings.CMS_WORKER_NICE
    if os.getpriority(os.PRIO_PROCESS, 0) < wanted:
        os.setpriority(os.PRIO_PROCESS, 0, wanted)
