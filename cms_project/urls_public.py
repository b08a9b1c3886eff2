"""URLs of the operator's public host: never touches tenant tables."""

from django.urls import path
from django.views.generic import TemplateView

from tenants.health import healthz, readyz
from tenants.metrics import metrics_view
from tenants.usage_views import OperatorLoginView, operator_usage

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
