"""Webhooks of a tenant: endpoints, events, and their delivery on the shared pool.

An event (``emit``) becomes one ``WebhookDelivery`` row per subscribed endpoint and one
background job each (``content.jobs``) in the webhooks lane (``tenants.jobs.lanes``):
a fair queue of its own, round robin across tenants, with at most the plan's
``webhook_concurrency`` deliveries of a tenant in flight, run by a worker of its own
(``CMS_WEBHOOKS_QUEUE``, many threads: a delivery mostly waits on the endpoint). So one
tenant's slow endpoint holds a few delivery threads, never the pool, and never a
publishing process. The plan's
``webhook_deliveries_per_hour`` bounds new events; over it the delivery is logged as
failed with the reason and can be redelivered later.

A delivery is signed per Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
``webhook-signature`` with the endpoint's secret) and sent by ``egress.post``. A
failure schedules the next attempt as a new row after an exponential backoff
(``CMS_WEBHOOKS_RETRY_BASE_MS`` doubling, at most ``CMS_WEBHOOKS_RETRY_MAX_SECONDS``)
for ``CMS_WEBHOOKS_RETRY_FOR_SECONDS`` (a day) after the event; a Celery countdown
puts it back on the fair queue when due. After
``CMS_WEBHOOKS_DISABLE_AFTER_FAILURES`` failed attempts in a row the endpoint is
disabled with the reason, which its admins see. Delivery is at least once: a worker
killed after sending sends again, with the same ``webhook-id``.
"""

import datetime
import json
import logging
import secrets
from base64 import b64encode
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import caches
from django.db import connection, transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from content.integrations import egress
from content.integrations.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from content.jobs import BackgroundJob, JobError, enqueue_jobs
from tenants.audit.trail import Actor, record_audit
from tenants.errors import TenantError
from tenants.jobs.kinds import register_job_kind
from tenants.jobs.lanes import register_lane
from tenants.models import Tenant
from tenants.tariffs.features import check_feature_count, tenant_feature

logger = logging.getLogger(__name__)

EVENTS = tuple(WebhookEvent.values)
DELIVERY_JOB = "webhook_delivery"
WEBHOOKS_LANE = "webhooks"
Status = WebhookDelivery.Status


class WebhookError(TenantError):
    """An endpoint that cannot be saved or used as asked."""


def new_secret() -> str:
    return "whsec_" + b64encode(secrets.token_bytes(32)).decode()


def _clean_events(events: Iterable[str]) -> list[str]:
    events = list(events)
    unknown = sorted(set(events) - set(EVENTS))
    if unknown or not events:
        raise WebhookError(
            f"Choose events among {', '.join(EVENTS)}"
            + (f"; unknown: {', '.join(unknown)}." if unknown else ".")
        )
    return [event for event in EVENTS if event in events]


def _clean_url(url: str) -> str:
    try:
        egress.check_scheme(url)
    except egress.DestinationRefused as exc:
        raise WebhookError(str(exc)) from None
    return url


def endpoint_create(
    *,
    tenant: Tenant,
    url: str,
    events: Iterable[str],
    description: str = "",
    user: AbstractBaseUser | None = None,
    actor: Actor | None = None,
) -> WebhookEndpoint:
    """Register an endpoint with a new secret (show ``endpoint.secret`` once). Raises
    ``WebhookError`` for a URL or events the platform refuses and
    ``FeatureLimitReached`` over the plan's ``webhook_endpoints``."""
    url = _clean_url(url)
    events = _clean_events(events)
    with transaction.atomic():
        check_feature_count(
            tenant, "webhook_endpoints", current=WebhookEndpoint.objects.count()
        )
        endpoint = WebhookEndpoint.objects.create(
            url=url,
            events=events,
            description=description,
            secret=new_secret(),
            created_by=user,
        )
        _audit("webhook.created", endpoint, actor, after=_endpoint_state(endpoint))
    return endpoint


def _endpoint_state(endpoint: WebhookEndpoint) -> dict:
    return {"url": endpoint.url, "events": endpoint.events, "enabled": endpoint.enabled}


def _audit(action: str, endpoint: WebhookEndpoint, actor: Actor | None, **states):
    """Webhook changes are security-relevant: where a tenant's events are sent."""
    record_audit(action=action, actor=actor, target=f"webhook {endpoint.url}", **states)


def endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str,
    events: Iterable[str],
    description: str,
    enabled: bool,
    actor: Actor | None = None,
) -> WebhookEndpoint:
    """Change an endpoint; enabling it again clears its failure count and reason."""
    before = _endpoint_state(endpoint)
    endpoint.url = _clean_url(url)
    endpoint.events = _clean_events(events)
    endpoint.description = description
    if enabled and not endpoint.enabled:
        endpoint.consecutive_failures = 0
        endpoint.disabled_reason = ""
    endpoint.enabled = enabled
    with transaction.atomic():
        endpoint.save()
        _audit(
            "webhook.changed",
            endpoint,
            actor,
            before=before,
            after=_endpoint_state(endpoint),
        )
    return endpoint


def endpoint_rotate_secret(
    *, endpoint: WebhookEndpoint, actor: Actor | None = None
) -> str:
    endpoint.secret = new_secret()
    with transaction.atomic():
        endpoint.save(update_fields=["secret"])
        _audit("webhook.secret_rotated", endpoint, actor)
    return endpoint.secret


def endpoint_delete(*, endpoint: WebhookEndpoint, actor: Actor | None = None) -> None:
    """Delete an endpoint and its delivery log. A delivery in flight holds the
    endpoint's row (``deliver`` locks it) and may log its next attempt as a new row
    before it commits: the row is locked first, so the deletion waits for it and takes
    that row too instead of failing on it. Locked FOR UPDATE, the row takes no new
    delivery (their rows' key check waits) until the deletion commits."""
    with transaction.atomic():
        WebhookEndpoint.objects.select_for_update().filter(pk=endpoint.pk).first()
        _audit("webhook.deleted", endpoint, actor, before=_endpoint_state(endpoint))
        endpoint.delete()


def page_data(page, *, extra: dict | None = None) -> dict:
    """What receivers learn about a page: enough to refetch it from the API."""
    specific_class = page.specific_class or type(page)
    try:
        url = page.get_full_url()
    except Exception:  # noqa: BLE001 - a page outside any site has no URL
        url = None
    data = {
        "page": {
            "id": page.pk,
            "type": specific_class._meta.label,
            "title": page.title,
            "url": url,
            "url_path": page.url_path,
            "locale": getattr(page.locale, "language_code", None),
        }
    }
    data.update(extra or {})
    return data


def actor_data(user: AbstractBaseUser | None) -> dict | None:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return {"id": user.pk, "username": user.get_username()}


def subscribed_endpoints(event: str) -> list[WebhookEndpoint]:
    return list(WebhookEndpoint.objects.filter(enabled=True, events__contains=[event]))


def emit(
    *,
    event: str,
    data: dict,
    actor: AbstractBaseUser | None = None,
    endpoints: Iterable[WebhookEndpoint] | None = None,
) -> list[WebhookDelivery]:
    """Queue ``event`` for every enabled endpoint subscribed to it (or the given
    ones), in the current tenant's schema and transaction: an event of a rolled
    back change is never sent."""
    if event not in EVENTS:
        raise WebhookError(f"Unknown event {event!r}.")
    endpoints = list(subscribed_endpoints(event) if endpoints is None else endpoints)
    if not endpoints:
        return []
    message_id = f"msg_{secrets.token_urlsafe(18)}"
    payload = {
        "type": event,
        "timestamp": timezone.now().isoformat(),
        "data": {**data, "actor": actor_data(actor)},
    }
    # the last ``over`` endpoints of this event are over the hourly allowance
    first_over = len(endpoints) - _take_hourly_allowance(len(endpoints))
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            endpoint=endpoint,
            message_id=message_id,
            event=event,
            payload=payload,
            status=Status.FAILED if index >= first_over else Status.QUEUED,
            error=(
                "Not sent: the plan's webhook deliveries per hour are used up; "
                "redeliver it later."
                if index >= first_over
                else ""
            ),
        )
        for index, endpoint in enumerate(endpoints)
    )
    _queue([d for d in deliveries if d.status == Status.QUEUED])
    return deliveries


def _take_hourly_allowance(count: int) -> int:
    """How many of ``count`` deliveries are over the plan's hourly allowance (the
    counter is per tenant: the cache's keys carry the schema)."""
    limit = tenant_feature(_current_tenant(), "webhook_deliveries_per_hour")
    key = hourly_counter_key()
    cache = caches["default"]
    cache.add(key, 0, timeout=3700)
    try:
        used = cache.incr(key, count)
    except ValueError:  # the counter expired between add and incr
        cache.set(key, count, timeout=3700)
        used = count
    if used is None:  # cache unavailable: deliver rather than lose events
        return 0
    return max(0, min(count, used - limit))


def hourly_counter_key() -> str:
    return f"webhooks:deliveries:{int(timezone.now().timestamp() // 3600)}"


def _current_tenant() -> Tenant:
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Tenant) and tenant.schema_name == connection.schema_name:
        return tenant
    # a worker's schema_context carries only the schema name
    return Tenant.objects.select_related("plan").get(schema_name=connection.schema_name)


def _queue(deliveries: list[WebhookDelivery]) -> None:
    if not deliveries:
        return
    enqueue_jobs(
        kind=DELIVERY_JOB,
        args_list=[{"delivery_id": delivery.pk} for delivery in deliveries],
        labels=[
            f"Webhook {delivery.event} to {delivery.endpoint.url}"[:255]
            for delivery in deliveries
        ],
    )


def send_test_event(
    *, endpoint: WebhookEndpoint, actor: AbstractBaseUser | None
) -> WebhookDelivery:
    """A ``webhook.test`` event to one endpoint, enabled or not subscribed."""
    return emit(
        event=WebhookEvent.WEBHOOK_TEST,
        data={"endpoint": {"id": endpoint.pk, "url": endpoint.url}},
        actor=actor,
        endpoints=[endpoint],
    )[0]


def redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a logged event again, now, with its original ``webhook-id``."""
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        raise WebhookError("Enable the endpoint before redelivering to it.")
    again = WebhookDelivery.objects.create(
        endpoint=endpoint,
        message_id=delivery.message_id,
        event=delivery.event,
        payload=delivery.payload,
    )
    _queue([again])
    return again


def sign(*, secret: str, message_id: str, body: str) -> dict[str, str]:
    """Standard Webhooks headers for ``body``."""
    now = timezone.now()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
    }


def retry_delay(attempt: int) -> float:
    """Seconds before attempt ``attempt + 1``."""
    base = settings.CMS_WEBHOOKS_RETRY_BASE_MS / 1000
    return min(settings.CMS_WEBHOOKS_RETRY_MAX_SECONDS, base * 2 ** (attempt - 1))


def register_webhook_job_kind() -> None:
    """Deliveries are the platform's own work on the tenant's behalf: they do not
    count against publish_jobs_per_hour (the plan's webhook_deliveries_per_hour
    limits them), and run in a lane of their own."""
    register_lane(WEBHOOKS_LANE, queue=_delivery_queue, cap=_delivery_cap)
    register_job_kind(
        DELIVERY_JOB, run=run_delivery, counts_against_plan=False, lane=WEBHOOKS_LANE
    )


def _delivery_queue() -> str:
    return settings.CMS_WEBHOOKS_QUEUE


def _delivery_cap(tenant: Tenant) -> int:
    return tenant_feature(tenant, "webhook_concurrency")


def run_delivery(job: BackgroundJob) -> dict:
    """The job: deliver one logged attempt (idempotent: a delivery already
    attempted is left alone)."""
    delivery_id = job.args.get("delivery_id")
    if not isinstance(delivery_id, int):
        raise JobError(f"Job {job.pk} has no valid delivery_id.")
    return deliver(delivery_id=delivery_id)


def deliver(*, delivery_id: int) -> dict:
    """Send one attempt and log its outcome; schedule the next or disable the
    endpoint on failure. Runs inside the caller's transaction.

    Locks, held while the endpoint answers (up to the timeout): the delivery's row,
    and the endpoint's row in KEY SHARE mode only, taken first, so that new events
    for the endpoint (their rows point at it) and other deliveries to it go on
    meanwhile, while the endpoint's deletion waits for the attempt to be logged."""
    endpoint_id = (
        WebhookDelivery.objects.filter(pk=delivery_id)
        .values_list("endpoint_id", flat=True)
        .first()
    )
    if endpoint_id is None or not _hold_endpoint(endpoint_id):
        return {"skipped": "gone"}
    delivery = (
        WebhookDelivery.objects.select_for_update(of=("self",))
        .select_related("endpoint")
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None or delivery.status != Status.QUEUED:
        return {"skipped": delivery.status if delivery else "gone"}
    endpoint = delivery.endpoint
    delivery.attempted_at = timezone.now()
    if not endpoint.enabled and delivery.event != WebhookEvent.WEBHOOK_TEST:
        delivery.status = Status.FAILED
        delivery.error = "Not sent: the endpoint is disabled."
        delivery.save()
        return {"status": delivery.status}
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "tenantcms-webhooks/1",
        **sign(secret=endpoint.secret, message_id=delivery.message_id, body=body),
    }
    result = egress.post(endpoint.url, body=body.encode(), headers=headers)
    delivery.response_status = result.status
    delivery.latency_ms = result.latency_ms
    delivery.response_excerpt = result.excerpt
    if result.succeeded:
        delivery.status = Status.SUCCEEDED
        delivery.save()
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=0)
        return {"status": delivery.status, "http_status": result.status}
    delivery.status = Status.REFUSED if result.refused else Status.FAILED
    delivery.error = result.error or f"The endpoint answered {result.status}."
    delivery.save()
    _after_failure(delivery)
    return {"status": delivery.status, "error": delivery.error}


def _hold_endpoint(endpoint_id: int) -> bool:
    """Lock the endpoint's row FOR KEY SHARE (Django's select_for_update has no such
    mode); False when it was deleted."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {WebhookEndpoint._meta.db_table} WHERE id = %s"
            " FOR KEY SHARE",
            [endpoint_id],
        )
        return cursor.fetchone() is not None


def _after_failure(delivery: WebhookDelivery) -> None:
    # NO KEY UPDATE: waits only for other deliveries' counter updates, never for
    # their attempts (which hold KEY SHARE)
    endpoint = WebhookEndpoint.objects.select_for_update(no_key=True).get(
        pk=delivery.endpoint_id
    )
    endpoint.consecutive_failures += 1
    limit = settings.CMS_WEBHOOKS_DISABLE_AFTER_FAILURES
    if endpoint.enabled and endpoint.consecutive_failures >= limit:
        endpoint.enabled = False
        endpoint.disabled_reason = (
            f"Disabled automatically on {timezone.now():%Y-%m-%d %H:%M} UTC after "
            f"{endpoint.consecutive_failures} failed deliveries in a row (last: "
            f"{delivery.error}). Fix the receiver, then enable it again."
        )
        logger.warning("webhook endpoint %s disabled: %s", endpoint.pk, delivery.error)
    endpoint.save(update_fields=["consecutive_failures", "enabled", "disabled_reason"])
    if not endpoint.enabled or delivery.status == Status.REFUSED:
        return
    delay = retry_delay(delivery.attempt)
    due = timezone.now() + datetime.timedelta(seconds=delay)
    if due > delivery.first_queued_at + datetime.timedelta(
        seconds=settings.CMS_WEBHOOKS_RETRY_FOR_SECONDS
    ):
        delivery.error += " No more retries (retried for a day)."
        delivery.save(update_fields=["error"])
        return
    retry = WebhookDelivery.objects.create(
        endpoint=endpoint,
        message_id=delivery.message_id,
        event=delivery.event,
        payload=delivery.payload,
        attempt=delivery.attempt + 1,
        status=Status.SCHEDULED,
        first_queued_at=delivery.first_queued_at,
        scheduled_for=due,
    )
    transaction.on_commit(lambda: _schedule(retry.pk, delay))


def _schedule(delivery_id: int, delay: float) -> None:
    from cms_project.celery import app

    # sent by name (no import of the tasks module), from the tenant's schema: the task
    # runs there (tenant-schemas-celery adds the schema to what is sent)
    app.send_task(
        "content.queue_webhook_retry",
        kwargs={"delivery_id": delivery_id},
        countdown=delay,
        retry=True,
    )


def queue_scheduled(*, delivery_id: int) -> bool:
    """A retry whose time has come goes onto the fair queue (once: a duplicate
    message finds it queued already)."""
    with transaction.atomic():
        changed = WebhookDelivery.objects.filter(
            pk=delivery_id, status=Status.SCHEDULED
        ).update(status=Status.QUEUED, created_at=timezone.now())
        if changed:
            _queue(list(WebhookDelivery.objects.filter(pk=delivery_id)))
    return bool(changed)
