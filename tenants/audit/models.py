"""The audit log's table (public schema). Rows are written once and never changed."""

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class AppendOnlyError(Exception):
    """An attempt to change or delete an audit entry."""


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("The audit log is append-only: entries are not updated.")

    def delete(self):
        raise AppendOnlyError("The audit log is append-only: entries are not deleted.")

    def bulk_update(self, *args, **kwargs):
        raise AppendOnlyError("The audit log is append-only: entries are not updated.")


class AuditEntry(models.Model):
    """One action: who (``actor``), what (``action`` on ``target``), when (``at``),
    from where (``source`` and ``ip``), for which tenant (its slug, kept as text so
    the entry outlives the tenant), and the state ``before`` and ``after``.

    Append-only: ``save`` of an existing row and ``delete`` raise; the migration adds
    a trigger that refuses UPDATE and DELETE in the database too."""

    class ActorKind(models.TextChoices):
        OPERATOR = "operator"
        USER = "user"
        SYSTEM = "system"
        ANONYMOUS = "anonymous"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=200)
    actor_kind = models.CharField(max_length=20, choices=ActorKind.choices)
    action = models.CharField(max_length=80, db_index=True)
    tenant_schema = models.CharField(max_length=63, blank=True, db_index=True)
    target = models.CharField(max_length=300, blank=True)
    source = models.CharField(max_length=40)
    ip = models.GenericIPAddressField(null=True, blank=True)
    before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)

    objects = AuditQuerySet.as_manager()

    class Meta:
        app_label = "tenants"
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["tenant_schema", "at"], name="audit_tenant_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AppendOnlyError(
                "The audit log is append-only: entries are not updated."
            )
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("The audit log is append-only: entries are not deleted.")
