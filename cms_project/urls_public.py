"""URLs of the operator's public host: never touches tenant tables."""

from django.urls import path
from django.views.generic import TemplateView

urlpatterns = [
    path(
        "", TemplateView.as_view(template_name="public_home.html"), name="public-home"
    ),
]
