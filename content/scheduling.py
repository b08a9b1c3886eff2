"""Scheduled publishing for every tenant: Celery beat runs the sweep, the sweep queues
one ``publish_scheduled`` job per tenant with due work, and the fair queue runs them."""

import logging

from django_tenants.utils import schema_context

from content.jobs import enqueue_job
from content.models import BackgroundJob
from content.publishing import has_scheduled_work
from tenants.models import Tenant
from tenants.registry.selectors import tenant_list

logger = logging.getLogger(__name__)


def sweep_scheduled_publishing() -> list[str]:
    """Queue the go-live / expiry pass in each active tenant that has due work and no
    such pass pending; returns the schemas queued."""
    queued = []
    for tenant in tenant_list().filter(status=Tenant.Status.ACTIVE):
        with schema_context(tenant.schema_name):
            if not has_scheduled_work():
                continue
            pending = BackgroundJob.objects.filter(
                kind="publish_scheduled",
                status__in=[BackgroundJob.Status.QUEUED, BackgroundJob.Status.RUNNING],
            ).exists()
            if pending:
                continue
            try:
                enqueue_job(
                    kind="publish_scheduled",
                    args={},
                    label="Scheduled publishing (go-live and expiry)",
                )
            except Exception:
                logger.exception("sweep: could not queue %s", tenant.schema_name)
                continue
            queued.append(tenant.schema_name)
    return queued
