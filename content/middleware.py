"""Wagtail's redirect middleware, skipped on the public schema (no table there)."""

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django_tenants.utils import get_public_schema_name
from wagtail.contrib.redirects.middleware import RedirectMiddleware


class TenantRedirectMiddleware(RedirectMiddleware):
    def process_response(
        self, request: HttpRequest, response: HttpResponse
    ) -> HttpResponse:
        if connection.schema_name == get_public_schema_name():
            return response
        return super().process_response(request, response)
