"""Models of API tokens and webhooks, in each tenant's schema (``content`` app)."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from wagtail.models import APIToken


class TokenScope(models.TextChoices):
    READ = "read", "Read (content API)"
    WRITE = "write", "Write (create and edit drafts)"
    PUBLISH = "publish", "Publish"


class ApiTokenGrant(models.Model):
    """What a Wagtail ``APIToken`` may do here: scopes, expiry, and its use.

    Wagtail 8's ``APIToken`` already stores only an HMAC of the secret, shows it once,
    acts as a user and can be revoked; it has no scopes, no expiry and no client
    address, which this adds. A token without a grant (made elsewhere) is refused."""

    token = models.OneToOneField(
        APIToken, on_delete=models.CASCADE, related_name="grant"
    )
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    use_count = models.PositiveBigIntegerField(default=0)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_address = models.GenericIPAddressField(null=True, blank=True)

    def __str__(self) -> str:
        return str(self.token)

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (
            now or timezone.now()
        )


class WebhookEvent(models.TextChoices):
    PAGE_PUBLISHED = "page.published", "Page published"
    PAGE_UNPUBLISHED = "page.unpublished", "Page unpublished"
    PAGE_DELETED = "page.deleted", "Page deleted"
    PAGE_MOVED = "page.moved", "Page moved"
    DOCUMENT_CREATED = "document.created", "Document created"
    WEBHOOK_TEST = "webhook.test", "Test event"


class WebhookEndpoint(models.Model):
    """Where a tenant wants its events sent. The secret signs every delivery
    (Standard Webhooks: it must be kept to sign, so it is stored; admins see it once).
    ``disabled_reason`` says why the platform switched it off after failures."""

    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=255, blank=True)
    events = models.JSONField(default=list)
    secret = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.TextField(blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.description or self.url


class WebhookDelivery(models.Model):
    """One attempt to deliver one event to one endpoint: the delivery log. Retries
    and redeliveries are new rows with the same ``message_id`` (the
    ``webhook-id`` header), so receivers can recognise a repeat."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled"  # waiting for its retry time
        QUEUED = "queued"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        REFUSED = "refused"  # the destination was not allowed (SSRF checks)

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    message_id = models.CharField(max_length=64, db_index=True)
    event = models.CharField(max_length=32)
    payload = models.JSONField()
    attempt = models.PositiveIntegerField(default=1)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED
    )
    response_status = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.TextField(blank=True)
    first_queued_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    attempted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} #{self.message_id} attempt {self.attempt}"
