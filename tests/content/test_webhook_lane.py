"""Every door to a webhook delivery puts it in the webhook lane, capped by the
plan's ``webhook_concurrency``, never on the publishing lane: an event of a publish,
the admin's "send test" and "redeliver", a retry whose backoff is over, and a failed
delivery job retried from the admin."""

import pytest
from django.conf import settings
from django_tenants.utils import schema_context

from content import jobs
from content.integrations import webhooks
from content.integrations.models import WebhookDelivery
from content.models import BackgroundJob
from tenants.jobs import fair_queue
from tenants.models import Plan, Tenant

pytestmark = pytest.mark.django_db


def test_every_door_queues_deliveries_in_the_webhook_lane_with_the_plans_cap(
    monkeypatch, django_capture_on_commit_callbacks
):
    pushed, tokens = [], []
    monkeypatch.setattr(fair_queue, "push", lambda **kwargs: pushed.append(kwargs) or 1)
    monkeypatch.setattr(
        jobs, "send_tokens", lambda count, **kwargs: tokens.append((count, kwargs))
    )
    acme = Tenant.objects.select_related("plan").get(schema_name="acme")
    Plan.objects.filter(pk=acme.plan_id).update(
        features={**acme.plan.features, "webhook_concurrency": 5}
    )
    acme.refresh_from_db()

    with schema_context("acme"):
        endpoint = webhooks.endpoint_create(
            tenant=acme,
            url="http://127.0.0.1:9/hook",
            events=["page.published", "webhook.test"],
        )
        with django_capture_on_commit_callbacks(execute=True):
            webhooks.emit(event="page.published", data={"page": {"id": 1}})
            test_event = webhooks.send_test_event(endpoint=endpoint, actor=None)
            webhooks.redeliver(delivery=test_event)
        scheduled = WebhookDelivery.objects.create(
            endpoint=endpoint,
            message_id="msg_retry",
            event="webhook.test",
            payload={},
            status=WebhookDelivery.Status.SCHEDULED,
        )
        with django_capture_on_commit_callbacks(execute=True):
            webhooks.queue_scheduled(delivery_id=scheduled.pk)
        failed = BackgroundJob.objects.filter(kind=webhooks.DELIVERY_JOB).first()
        BackgroundJob.objects.filter(pk=failed.pk).update(
            status=BackgroundJob.Status.FAILED
        )
        with django_capture_on_commit_callbacks(execute=True):
            jobs.retry_job(job_id=failed.pk)

    assert len(pushed) == 5
    assert {(p["schema"], p["cap"], p["queue"]) for p in pushed} == {
        ("acme", 5, settings.CMS_WEBHOOKS_QUEUE)
    }
    assert settings.CMS_WEBHOOKS_QUEUE != settings.CMS_JOBS_QUEUE
    assert tokens == [(1, {"lane": webhooks.WEBHOOKS_LANE})] * 5
