"""Celery tasks of the tenants app (thin: the work is in the services)."""

from cms_project.celery import app


@app.task(name="tenants.flush_usage", ignore_result=True)
def flush_usage_task() -> dict:
    """Celery beat: move the usage counters from Redis into UsageDay rows."""
    from tenants.metering.usage import flush_usage

    result = flush_usage()
    return {"batches": result.batches, "counts": result.counts}


@app.task(name="tenants.verify_domain", bind=True, ignore_result=True)
def verify_domain_task(self, domain_id: int) -> str:
    """Retry a pending domain's ownership check with growing pauses; after
    ``CMS_DOMAIN_VERIFY_ATTEMPTS`` tries it is shown as failed (a later "verify now"
    may still succeed). Removed or already verified domains end the retries."""
    from django.conf import settings

    from tenants.domains.ownership import domain_mark_failed, domain_verify
    from tenants.errors import DomainVerificationFailed
    from tenants.models import Domain

    domain = Domain.objects.filter(pk=domain_id).first()
    if domain is None or domain.is_verified:
        return "gone" if domain is None else "verified"
    try:
        domain_verify(domain=domain)
    except DomainVerificationFailed:
        attempts = settings.CMS_DOMAIN_VERIFY_ATTEMPTS
        if self.request.retries + 1 >= attempts:
            domain_mark_failed(domain=domain)
            return "failed"
        delay = min(
            settings.CMS_DOMAIN_VERIFY_RETRY_SECONDS * 2**self.request.retries,
            3600,
        )
        raise self.retry(countdown=delay, max_retries=attempts) from None
    return "verified"


def schedule_domain_verification(domain_id: int) -> None:
    """Queue the background check once the domain's row is committed. A broker that
    cannot be reached leaves the domain pending (checked on "verify now"), logged."""
    import logging

    from django.db import transaction

    def send() -> None:
        try:
            verify_domain_task.delay(domain_id)
        except Exception:  # noqa: BLE001 - the domain is saved; only the retry is lost
            logging.getLogger(__name__).warning(
                "could not queue the verification of domain %s", domain_id
            )

    transaction.on_commit(send)
