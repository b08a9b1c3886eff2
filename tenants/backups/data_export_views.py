"""The tenant's data export in its Wagtail admin: ask for one, download it through
its signed, expiring link. Administrators only; only ``request.tenant``'s exports."""

from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from tenants.audit.trail import Actor, record_audit
from tenants.backups.data_export import (
    data_export_from_token,
    data_export_link_token,
    data_export_request,
)
from tenants.backups.models import DataExport
from tenants.backups.storage import backup_storage
from tenants.errors import TenantError


def _admins_only(request: HttpRequest) -> None:
    if not request.user.is_superuser:
        raise PermissionDenied


def data_export_index(request: HttpRequest) -> HttpResponse:
    _admins_only(request)
    tenant = request.tenant
    if request.method == "POST":
        data_export_request(tenant=tenant, actor=Actor.from_request(request))
        return redirect("tenant_data_export")
    exports = DataExport.objects.filter(tenant_schema=tenant.schema_name)[:20]
    rows = [
        {
            "export": export,
            "link": reverse(
                "tenant_data_export_download",
                args=[data_export_link_token(export)],
            )
            if export.status == DataExport.Status.READY
            else None,
        }
        for export in exports
    ]
    return TemplateResponse(
        request, "tenants/admin/data_export.html", {"rows": rows, "tenant": tenant}
    )


def data_export_download(request: HttpRequest, signed: str) -> HttpResponse:
    _admins_only(request)
    try:
        export = data_export_from_token(token=signed, tenant=request.tenant)
    except TenantError as exc:
        return HttpResponse(
            f"{exc}\n", status=410, content_type="text/plain; charset=utf-8"
        )
    record_audit(
        action="data_export.downloaded",
        actor=Actor.from_request(request),
        tenant=request.tenant.schema_name,
        target=f"data export {export.pk}",
    )
    return FileResponse(
        backup_storage().open(export.storage_name, "rb"),
        as_attachment=True,
        filename=f"{request.tenant.schema_name}-data-{export.pk}.zip",
    )
