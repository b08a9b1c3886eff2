"""Benchmark (b): only Wagtail's page serving, as a plain single-site project has."""

from django.urls import include, path
from wagtail import urls as wagtail_urls

urlpatterns = [path("", include(wagtail_urls))]
