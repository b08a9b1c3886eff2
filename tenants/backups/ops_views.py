"""The operator's backup page for one tenant (public host, staff only): its backups
and restores, with buttons to back it up now, restore it in place from a backup, or
undo the last restore. Each button calls the same service as ``manage.py tenants``,
with the operator as the audited actor."""

from urllib.parse import urlencode

from django.contrib.auth.decorators import user_passes_test
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from tenants.audit.trail import Actor
from tenants.backups import restore, snapshots
from tenants.backups.models import Restore
from tenants.errors import TenantError
from tenants.registry.selectors import tenant_get


def _page(request: HttpRequest, slug: str, *, message: str = "", status: int = 200):
    tenant = tenant_get(slug)
    return TemplateResponse(
        request,
        "tenants/ops/backups.html",
        {
            "tenant": tenant,
            "backups": list(reversed(snapshots.backups_list(slug=slug)))[:50],
            "restores": Restore.objects.filter(tenant_schema=slug).order_by(
                "-swapped_at"
            )[:10],
            "message": message or request.GET.get("done", ""),
        },
        status=status,
    )


@user_passes_test(lambda user: user.is_active and user.is_staff, login_url="ops-login")
@require_http_methods(["GET", "POST"])
def operator_backups(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        if request.method == "GET":
            return _page(request, slug)
        tenant_get(slug)
        actor = Actor.from_request(request, source="ops")
        action = request.POST.get("action", "")
        if action == "backup":
            backup = snapshots.backup_take(slug=slug, actor=actor)
            done = f"Backup {backup.pk} taken."
        elif action == "restore":
            result = restore.restore_backup(
                slug=slug, backup_id=request.POST.get("backup", ""), actor=actor
            )
            done = (
                f"Restored from backup {result.restore.backup_id}; undo possible "
                f"until {result.restore.undo_until:%Y-%m-%d %H:%M} UTC."
            )
        elif action == "undo":
            undone = restore.restore_undo(slug=slug, actor=actor)
            done = f"Restore {undone.pk} undone."
        else:
            return HttpResponse(
                "Unknown action: use backup, restore or undo.\n",
                status=400,
                content_type="text/plain; charset=utf-8",
            )
    except TenantError as exc:
        try:
            return _page(request, slug, message=str(exc), status=400)
        except TenantError:
            return HttpResponse(
                f"{exc}\n", status=404, content_type="text/plain; charset=utf-8"
            )
    url = reverse("ops-backups", args=[slug])
    return redirect(f"{url}?{urlencode({'done': done})}")
