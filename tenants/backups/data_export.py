"""A tenant's own data, in a portable form it can take anywhere.

One zip file: ``pages.json`` (every page with its fields and all its revisions),
``users.json`` (accounts with their groups, never a password hash), ``images/`` and
``documents/`` (the original files), and ``manifest.json``. Tenant administrators
ask for it in their admin; it is built by a background job into the backup storage
and handed out through a signed link that expires after
``CMS_DATA_EXPORT_LINK_SECONDS``. Operators write the same file with
``tenants export SLUG --portable``.
"""

import json
import tempfile
import zipfile
from pathlib import Path

from django.conf import settings
from django.core import signing
from django.core.files import File
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from tenants.audit.trail import Actor, record_audit
from tenants.backups.models import DataExport
from tenants.backups.storage import backup_storage
from tenants.errors import TenantError
from tenants.models import Tenant
from tenants.registry.selectors import tenant_get

SIGNING_SALT = "tenants.backups.data_export"
USER_FIELDS = (
    "id",
    "username",
    "email",
    "first_name",
    "last_name",
    "is_active",
    "is_staff",
    "is_superuser",
    "date_joined",
    "last_login",
)


class ExportLinkInvalid(TenantError):
    pass


class ExportLinkExpired(TenantError):
    pass


def _pages() -> list[dict]:
    from wagtail.models import Page, Revision

    pages = []
    for page in Page.objects.exclude(depth=1).order_by("path").specific():
        revisions = Revision.page_revisions.filter(object_id=str(page.pk)).order_by(
            "created_at", "id"
        )
        pages.append(
            {
                "id": page.pk,
                "type": page.specific_class._meta.label,
                "url_path": page.url_path,
                "fields": page.serializable_data(),
                "revisions": [
                    {
                        "id": revision.pk,
                        "created_at": revision.created_at,
                        "user": revision.user.get_username() if revision.user else None,
                        "approved_go_live_at": revision.approved_go_live_at,
                        "content": revision.content,
                    }
                    for revision in revisions.select_related("user")
                ],
            }
        )
    return pages


def _users() -> list[dict]:
    from django.contrib.auth import get_user_model

    rows = []
    for user in get_user_model().objects.prefetch_related("groups").order_by("pk"):
        row = {field: getattr(user, field, None) for field in USER_FIELDS}
        row["groups"] = sorted(group.name for group in user.groups.all())
        rows.append(row)
    return rows


def _add_files(bundle: zipfile.ZipFile, folder: str, files) -> list[dict]:
    listed = []
    for item in files:
        name = f"{folder}/{item.pk}-{Path(item.file.name).name}"
        try:
            with item.file.open("rb") as source:
                bundle.writestr(name, source.read())
        except FileNotFoundError:
            name = None
        listed.append({"id": item.pk, "title": item.title, "file": name})
    return listed


def write_portable_export(
    *, slug: str, output: Path, actor: Actor | None = None, audit: bool = True
) -> dict:
    """Write tenant ``slug``'s portable export to ``output``; returns its manifest.
    Audited (data leaves the platform) unless the caller records it itself."""
    from wagtail.documents import get_document_model
    from wagtail.images import get_image_model

    tenant = tenant_get(slug)
    output = Path(output)
    if not output.parent.exists():
        raise TenantError(f"The folder {output.parent} does not exist.")
    with schema_context(slug), transaction.atomic():
        pages = _pages()
        users = _users()
        with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as bundle:
            images = _add_files(bundle, "images", get_image_model().objects.all())
            documents = _add_files(
                bundle, "documents", get_document_model().objects.all()
            )
            manifest = {
                "tenant": slug,
                "name": tenant.name,
                "exported_at": timezone.now(),
                "pages": len(pages),
                "users": len(users),
                "images": images,
                "documents": documents,
            }
            for name, payload in (
                ("pages.json", pages),
                ("users.json", users),
                ("manifest.json", manifest),
            ):
                bundle.writestr(
                    name, json.dumps(payload, cls=DjangoJSONEncoder, indent=1)
                )
    if audit:
        record_audit(
            action="tenant.exported_portable",
            actor=actor,
            tenant=slug,
            target=f"tenant {slug}",
            after={"path": str(output), "pages": len(pages), "users": len(users)},
        )
    return manifest


def data_export_request(*, tenant: Tenant, actor: Actor) -> DataExport:
    """Record a tenant's request for its data and queue the job that builds it."""
    from cms_project.celery import app

    with transaction.atomic():
        export = DataExport.objects.create(
            tenant_schema=tenant.schema_name, requested_by=actor.name[:150]
        )
        record_audit(
            action="data_export.requested",
            actor=actor,
            tenant=tenant.schema_name,
            target=f"data export {export.pk}",
        )
        transaction.on_commit(
            lambda: app.send_task("tenants.build_data_export", args=[export.pk])
        )
    return export


def data_export_build(*, export_id: int) -> DataExport:
    """Build a requested export into the backup storage (the background job)."""
    export = DataExport.objects.get(pk=export_id)
    if export.status != DataExport.Status.PENDING:
        return export
    try:
        with tempfile.TemporaryDirectory(prefix="data-export-") as folder:
            local = Path(folder) / "export.zip"
            write_portable_export(slug=export.tenant_schema, output=local, audit=False)
            stamp = f"{timezone.now():%Y%m%dT%H%M%S}"
            name = f"exports/{export.tenant_schema}/{export.pk}-{stamp}.zip"
            with local.open("rb") as source:
                stored = backup_storage().save(name, File(source, name="export.zip"))
            size = local.stat().st_size
    except Exception as exc:
        DataExport.objects.filter(pk=export.pk).update(
            status=DataExport.Status.FAILED,
            error=str(exc)[:2000],
            finished_at=timezone.now(),
        )
        raise
    DataExport.objects.filter(pk=export.pk).update(
        status=DataExport.Status.READY,
        storage_name=stored,
        size_bytes=size,
        finished_at=timezone.now(),
    )
    record_audit(
        action="data_export.built",
        actor=Actor.system("data export"),
        tenant=export.tenant_schema,
        target=f"data export {export.pk}",
        after={"size_bytes": size},
    )
    export.refresh_from_db()
    return export


def data_export_link_token(export: DataExport) -> str:
    return signing.TimestampSigner(salt=SIGNING_SALT).sign(
        f"{export.tenant_schema}:{export.pk}"
    )


def data_export_from_token(*, token: str, tenant: Tenant) -> DataExport:
    """The export a signed link points to, if it is this tenant's and still valid."""
    signer = signing.TimestampSigner(salt=SIGNING_SALT)
    try:
        value = signer.unsign(token, max_age=settings.CMS_DATA_EXPORT_LINK_SECONDS)
    except signing.SignatureExpired:
        raise ExportLinkExpired(
            "This download link has expired: ask for a new export."
        ) from None
    except signing.BadSignature:
        raise ExportLinkInvalid("This download link is not valid.") from None
    schema, _, export_id = value.rpartition(":")
    export = DataExport.objects.filter(
        pk=int(export_id), tenant_schema=tenant.schema_name
    ).first()
    if schema != tenant.schema_name or export is None:
        raise ExportLinkInvalid("This download link is not valid.")
    if export.status != DataExport.Status.READY:
        raise ExportLinkInvalid("This export is not ready.")
    return export
