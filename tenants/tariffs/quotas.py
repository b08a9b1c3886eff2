"""Plan quotas on what a tenant stores: pages, users and storage.

Checked when something is created (admin, API, uploads). A downgrade below the current
usage never deletes anything: it only blocks further growth until usage is back under
the plan.

Every stored upload passes ``check_upload`` (the per-file size and the storage quota):
Wagtail's image and document forms call it for every way the admin stores a file
(add, multiple add, chooser upload, replacing a file on edit; content.upload_forms),
and an import checks the files it brings with ``check_imported_uploads``.
"""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Sum

from tenants.errors import TenantError
from tenants.models import Plan, Tenant


class QuotaExceeded(TenantError):
    """The message says which quota, the usage and the plan's limit."""


def page_count() -> int:
    from wagtail.models import Page

    return Page.objects.filter(depth__gt=1).count()  # the tree root is not a page


def user_count() -> int:
    return get_user_model().objects.filter(is_active=True).count()


def storage_bytes() -> int:
    from wagtail.documents import get_document_model
    from wagtail.images import get_image_model

    images = get_image_model().objects.aggregate(total=Sum("file_size"))["total"]
    documents = get_document_model().objects.aggregate(total=Sum("file_size"))["total"]
    return (images or 0) + (documents or 0)


def check_pages(tenant: Tenant, adding: int = 1) -> None:
    limit = tenant.plan.max_pages
    used = page_count()
    if used + adding > limit:
        raise QuotaExceeded(
            f"Your plan ({tenant.plan.title}) allows {limit} pages and this site has "
            f"{used}. Delete pages or upgrade the plan to add more."
        )


def check_users(tenant: Tenant, adding: int = 1) -> None:
    limit = tenant.plan.max_users
    used = user_count()
    if used + adding > limit:
        raise QuotaExceeded(
            f"Your plan ({tenant.plan.title}) allows {limit} users and this site has "
            f"{used}. Deactivate users or upgrade the plan to add more."
        )


def check_storage(tenant: Tenant, adding_bytes: int) -> None:
    limit = tenant.plan.storage_mb * 1024 * 1024
    used = storage_bytes()
    if used + adding_bytes > limit:
        raise QuotaExceeded(
            f"Your plan ({tenant.plan.title}) allows {tenant.plan.storage_mb} MB of "
            f"uploads and this site uses {used / 1048576:.1f} MB; this upload needs "
            f"{adding_bytes / 1048576:.1f} MB more. Delete files or upgrade the plan."
        )


def active_tenant() -> Tenant | None:
    """The tenant whose schema is active: the one the gate set for a request, else
    looked up by schema (a command or task inside ``schema_context``)."""
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Tenant):
        return tenant
    schema = getattr(connection, "schema_name", None)
    if not schema:
        return None
    return Tenant.objects.select_related("plan").filter(schema_name=schema).first()


def check_upload(tenant: Tenant, *, size: int, replacing: int = 0) -> None:
    """The one rule for a file about to be stored: within the plan's size for one
    file, and within the storage quota once stored (a file it replaces gives its
    size back, so a smaller replacement is growth of nothing and always allowed)."""
    check_upload_sizes(tenant, [size])
    adding = size - replacing
    if adding > 0:
        check_storage(tenant, adding)


def check_imported_uploads(plan: Plan, sizes: list[int]) -> None:
    """The files an import brings within ``plan``: each within the per-file size,
    all of them within the storage quota. Checked before anything is created."""
    check_upload_sizes(_OnPlan(plan), sizes)
    limit = plan.storage_mb * 1024 * 1024
    total = sum(sizes)
    if total > limit:
        raise QuotaExceeded(
            f"The plan ({plan.title}) allows {plan.storage_mb} MB of uploads and the "
            f"archive holds {total / 1048576:.1f} MB. Import it on a larger plan."
        )


@dataclass(frozen=True)
class _OnPlan:
    """A tenant-to-be: the checks read only its plan."""

    plan: Plan


def check_upload_sizes(tenant: Tenant, sizes: list[int]) -> None:
    """Each uploaded file within the plan's per-file limit."""
    limit = tenant.plan.max_upload_mb * 1024 * 1024
    largest = max(sizes, default=0)
    if largest > limit:
        raise QuotaExceeded(
            f"Your plan ({tenant.plan.title}) accepts files of up to "
            f"{tenant.plan.max_upload_mb} MB; this one has {largest / 1048576:.1f} MB. "
            "Upload a smaller file or upgrade the plan."
        )


def stored_snapshot(tenant: Tenant) -> dict[str, int]:
    """Storage, pages and users as the quotas count them, in ``tenant``'s schema
    (for the usage rows and the Usage pages)."""
    from django_tenants.utils import schema_context

    with schema_context(tenant.schema_name):
        return {
            "storage_bytes": storage_bytes(),
            "pages": page_count(),
            "users": user_count(),
        }
