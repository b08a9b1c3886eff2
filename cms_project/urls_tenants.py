"""URLs of a tenant's host: Wagtail admin, API, media and the tenant's pages."""

from django.urls import include, path, re_path
from wagtail import urls as wagtail_urls
from wagtail.admin import urls as wagtailadmin_urls
from wagtail.documents import urls as wagtaildocs_urls

from content.api import api_router
from content.media import serve_tenant_media

urlpatterns = [
    path("admin/", include(wagtailadmin_urls)),
    path("documents/", include(wagtaildocs_urls)),
    path("api/v2/", api_router.urls),
    re_path(
        r"^media/tenants/(?P<schema>[^/]+)/(?P<path>.+)$",
        serve_tenant_media,
        name="tenant-media",
    ),
    path("", include(wagtail_urls)),
]
