from django.apps import AppConfig


class ContentConfig(AppConfig):
    """Pages, the headless API and publishing; lives in every tenant's schema."""

    name = "content"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from content.page_cache import connect_purge_signals, install_policy

        install_policy()
        connect_purge_signals()

        from content.models import new_home_page
        from tenants.provisioning.creation import register_home_page

        register_home_page(new_home_page)
