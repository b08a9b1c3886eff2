"""Every door that writes a tenant or a host name claims it in the directory first.

Model signals rather than calls in each service: creation, import, clone, the
admin's custom domains and the CLI all save ``Tenant`` and ``Domain`` rows through
the ORM, so a ``pre_save`` receiver sees every one of them, and a name another pod
holds is refused before this pod writes anything. Releases follow deletions.

A claim is made on the directory's own connection, so a local transaction rolled
back after it outlives the rollback; it names this pod, so a retry here succeeds. The
doors that create tenants (creation, import and so clone) give it up when they fail
(``released_on_failure``), so that other pods may take the name.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db.models.signals import post_delete, pre_save

from tenants.pods import directory

SKIPPED_SCHEMAS = {"public"}
logger = logging.getLogger(__name__)


def _is_served(tenant) -> bool:
    from tenants.models import Tenant

    return (
        tenant.status != Tenant.Status.TEMPLATE
        and tenant.schema_name not in SKIPPED_SCHEMAS
    )


def _claim_tenant(sender, instance, **kwargs) -> None:
    if directory.enabled() and instance._state.adding and _is_served(instance):
        directory.claim_tenant(instance.schema_name, directory.local_pod())


def _release_tenant(sender, instance, **kwargs) -> None:
    if directory.enabled() and _is_served(instance):
        directory.release_tenant(instance.schema_name, directory.local_pod())


def _claim_hostname(sender, instance, **kwargs) -> None:
    if not directory.enabled() or not _is_served(instance.tenant):
        return
    if not instance._state.adding:
        before = sender.objects.filter(pk=instance.pk).values_list("domain", flat=True)
        if list(before) == [instance.domain]:
            return
    directory.claim_hostnames(instance.tenant.schema_name, [instance.domain])


def _release_hostname(sender, instance, **kwargs) -> None:
    if directory.enabled():
        directory.release_hostname(instance.domain, directory.local_pod())


@contextmanager
def released_on_failure(slug: str) -> Iterator[None]:
    """Around a tenant's creation (outside its transaction): when it fails, forget
    the claims its saves made - the slug and, with it, its host names - unless this
    pod holds the tenant after all."""
    try:
        yield
    except BaseException:
        _release_unsaved(slug)
        raise


def _release_unsaved(slug: str) -> None:
    from tenants.models import Tenant

    try:
        if directory.enabled() and not (
            Tenant.objects.filter(schema_name=slug).exists()
        ):
            directory.release_tenant(slug, directory.local_pod())
    except Exception:  # the creation's own error is the one to report
        logger.exception("could not release the directory claim of %s", slug)


def connect_claim_signals() -> None:
    from tenants.models import Domain, Tenant

    pre_save.connect(_claim_tenant, sender=Tenant, dispatch_uid="pods-claim-tenant")
    post_delete.connect(
        _release_tenant, sender=Tenant, dispatch_uid="pods-release-tenant"
    )
    pre_save.connect(_claim_hostname, sender=Domain, dispatch_uid="pods-claim-host")
    post_delete.connect(
        _release_hostname, sender=Domain, dispatch_uid="pods-release-host"
    )
