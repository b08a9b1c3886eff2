from django.apps import AppConfig


class TenantsConfig(AppConfig):
    """Tenants, their domains and tariffs: everything decided per tenant lives here."""

    name = "tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tenants.adapters.django import install_schema_scoped_cache
        from tenants.registry.resolution import (
            connect_site_signals,
            shared_content_types,
        )

        install_schema_scoped_cache(shared_content_types)
        connect_site_signals()

        from tenants.audit.security import connect_security_signals

        connect_security_signals()

        from tenants.pods.claims import connect_claim_signals
        from tenants.pods.plans import connect_plan_signals

        connect_claim_signals()
        connect_plan_signals()
