"""Serving uploaded media per tenant.

Files live under MEDIA_ROOT/tenants/<schema>/ and their URLs carry the schema. A URL is
served only on the hosts of the tenant whose schema it names, so one tenant's image URL
gives a 404 on another tenant's host. In production nginx serves the same layout
(deploy/nginx.conf) and this view is the development fallback.
"""

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.db import connection
from django.http import Http404, HttpRequest
from django.views.static import serve


def serve_tenant_media(request: HttpRequest, schema: str, path: str):
    if schema != connection.schema_name:
        raise Http404("No such file.")
    root = settings.MEDIA_ROOT / "tenants" / schema
    try:
        return serve(request, path, document_root=root)
    except SuspiciousFileOperation:  # "../" out of the tenant's folder
        raise Http404("No such file.") from None
