"""The tenant's own audit entries in its Wagtail admin (administrators only).

The entries are chosen by ``request.tenant`` alone: no parameter names a tenant, so
an administrator cannot read another tenant's trail."""

from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from tenants.audit.models import AuditEntry

PAGE_SIZE = 50


def tenant_audit_log(request: HttpRequest) -> HttpResponse:
    if not request.user.is_superuser:
        raise PermissionDenied
    entries = AuditEntry.objects.filter(
        tenant_schema=request.tenant.schema_name
    ).order_by("-at", "-id")
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("p"))
    return TemplateResponse(
        request,
        "tenants/admin/audit.html",
        {"page": page, "tenant": request.tenant},
    )
