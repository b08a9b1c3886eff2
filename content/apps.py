import importlib

from django.apps import AppConfig
from django.conf import settings


class ContentConfig(AppConfig):
    """Pages, the headless API and publishing; lives in every tenant's schema."""

    name = "content"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from content.integrations.signals import connect_webhook_signals
        from content.page_cache import connect_purge_signals, install_policy
        from content.publish_jobs import register_job_kinds

        install_policy()
        connect_purge_signals()

        from content.models import new_home_page
        from tenants.provisioning.creation import register_home_page

        register_home_page(new_home_page)

        # Job kinds register themselves with the fair queue (tenants.jobs.kinds),
        # which knows nothing of content; tests and plug-ins add their own modules.
        register_job_kinds()
        for module in settings.CMS_BACKGROUND_JOB_MODULES:
            importlib.import_module(module)

        from content.integrations.webhooks import register_webhook_job_kind

        register_webhook_job_kind()
        connect_webhook_signals()
