from django.apps import AppConfig


class TenantsConfig(AppConfig):
    """Tenants, their domains and tariffs: everything decided per tenant lives here."""

    name = "tenants"
    default_auto_field = "django.db.models.BigAutoField"
