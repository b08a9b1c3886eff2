"""Usage pages: a tenant's own (in its Wagtail admin) and the operator's overview of
every tenant (on the public host, staff only).

The tenant page reads only ``request.tenant``: no parameter can name another tenant,
so an editor cannot see anyone else's numbers. The operator page lives in the public
URLconf, behind a login of the public schema's own users.
"""

import datetime as dt

from django.contrib.auth.decorators import user_passes_test
from django.contrib.auth.views import LoginView
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse

from tenants.metering import counters, reports
from tenants.metering.chart import daily_requests_svg
from tenants.tariffs.features import FEATURES, plan_features

CHART_DAYS = 30
OPERATOR_COLUMNS = ("slug", "plan", *counters.COUNTERS, *counters.SNAPSHOTS)
OPERATOR_PAGE_SIZE = 100


def tenant_usage(request: HttpRequest) -> HttpResponse:
    """This tenant's period usage against its plan, and the last 30 days."""
    tenant = request.tenant
    start, end = reports.period_bounds()
    period = reports.usage_days(tenant=tenant, start=start, end=end)
    recent = reports.usage_days(
        tenant=tenant, start=end - dt.timedelta(days=CHART_DAYS - 1), end=end
    )
    totals = reports.period_totals(period)
    lines = reports.usage_against_plan(
        tenant=tenant, totals=totals, current=reports.current_snapshot(tenant)
    )
    return TemplateResponse(
        request,
        "tenants/admin/usage.html",
        {
            "tenant": tenant,
            "plan": tenant.plan,
            "start": start,
            "end": end,
            "lines": lines,
            "chart": daily_requests_svg(recent),
            "features": plan_feature_lines(tenant.plan),
            "recent": recent,
        },
    )


def plan_feature_lines(plan) -> list[dict]:
    """The plan's feature switches and counts, worded for the tenant."""
    lines = []
    for name, value in plan_features(plan).items():
        feature = FEATURES[name]
        if feature.kind == "switch":
            shown = "included" if value else "not included"
        else:
            shown = f"{value:,}"
        lines.append({"name": name, "label": feature.help.capitalize(), "value": shown})
    return lines


class OperatorLoginView(LoginView):
    template_name = "tenants/ops/login.html"


@user_passes_test(lambda user: user.is_active and user.is_staff, login_url="ops-login")
def operator_usage(request: HttpRequest) -> HttpResponse:
    """Every tenant's usage this period, sortable by any column."""
    sort = request.GET.get("sort", "public_reads")
    direction = request.GET.get("dir", "desc")
    if sort not in OPERATOR_COLUMNS or direction not in ("asc", "desc"):
        return HttpResponseBadRequest(
            f"Sort by one of {', '.join(OPERATOR_COLUMNS)} with dir=asc or dir=desc.",
            content_type="text/plain",
        )
    start, end = reports.period_bounds()
    rows = sorted(
        reports.all_tenants_usage(start=start, end=end),
        key=lambda row: (row[sort], row["slug"]),
        reverse=direction == "desc",
    )
    page = Paginator(rows, OPERATOR_PAGE_SIZE).get_page(request.GET.get("page"))
    columns = [
        {
            "name": name,
            "title": name.replace("_", " "),
            "active": name == sort,
            "next_dir": "asc" if name == sort and direction == "desc" else "desc",
        }
        for name in OPERATOR_COLUMNS
    ]
    return TemplateResponse(
        request,
        "tenants/ops/usage.html",
        {
            "start": start,
            "end": end,
            "columns": columns,
            "page": page,
            "rows": [[row[c] for c in OPERATOR_COLUMNS] for row in page.object_list],
            "sort": sort,
            "dir": direction,
        },
    )
