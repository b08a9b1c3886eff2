"""URLs of the operator's public host: never touches tenant tables."""

from django.urls import path
from django.views.generic import TemplateView

from tenants.backups.ops_views import operator_backups
from tenants.domains.tls_ask import tls_ask
from tenants.metering.views import OperatorLoginView, operator_usage
from tenants.observability.health import healthz, readyz
from tenants.observability.metrics import metrics_view
from tenants.tariffs.login_limits import login_limited

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    # Caddy's on-demand TLS ``ask`` (tenants.domains.tls_ask)
    path("_tls/ask", tls_ask, name="tls-ask"),
    # limited like every password form (tenants.tariffs.login_limits)
    path("ops/login/", login_limited(OperatorLoginView.as_view()), name="ops-login"),
    path("ops/usage/", operator_usage, name="ops-usage"),
    path("ops/tenants/<str:slug>/backups/", operator_backups, name="ops-backups"),
    path(
        "", TemplateView.as_view(template_name="public_home.html"), name="public-home"
    ),
]

# A database outage answers 503 with Retry-After instead of a 500 (tenants.resilience)
handler500 = "tenants.resilience.outage.server_error"
