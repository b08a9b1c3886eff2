from django.apps import AppConfig


class ContentConfig(AppConfig):
    """Pages, the headless API and publishing; lives in every tenant's schema."""

    name = "content"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from content.integrations.signals import connect_webhook_signals
        from content.page_cache import connect_purge_signals

        connect_purge_signals()
        # also registers the webhook delivery job kind (content.jobs)
        connect_webhook_signals()
