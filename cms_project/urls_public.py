"""URLs of the operator's public host: never touches tenant tables."""

from django.urls import path
from django.views.generic import TemplateView

from tenants.metering.views import OperatorLoginView, operator_usage
from tenants.observability.health import healthz, readyz
from tenants.observability.metrics import metrics_view

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("ops/login/", OperatorLoginView.as_view(), name="ops-login"),
    path("ops/usage/", operator_usage, name="ops-usage"),
    path(
        "", TemplateView.as_view(template_name="public_home.html"), name="public-home"
    ),
]

# A database outage answers 503 with Retry-After instead of a 500 (tenants.resilience)
handler500 = "tenants.resilience.outage.server_error"
