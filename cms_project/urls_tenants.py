"""URLs of a tenant's host: Wagtail admin, API, media and the tenant's pages.

Public pages and the API are wrapped in the tariff's rate limits here (public pages
are marked for content.hot_path, which counts their GETs against the same limit in
the round trip that also reads the page cache); the admin is
not (editors are never locked out by their visitors) except for its login, which is
limited against password guessing.
"""

from django.urls import include, path, re_path
from wagtail import urls as wagtail_urls
from wagtail import views as wagtail_views
from wagtail.admin import urls as wagtailadmin_urls
from wagtail.admin.views.account import LoginView
from wagtail.contrib.sitemaps.views import sitemap
from wagtail.documents import urls as wagtaildocs_urls
from wagtail.documents.views.documents import CreateView as DocumentCreateView
from wagtail.documents.views.multiple import AddView as DocumentMultipleAddView
from wagtail.images.views.images import CreateView as ImageCreateView
from wagtail.images.views.multiple import AddView as ImageMultipleAddView

from content.api import api_router
from content.api_write import ArticleWriteView
from content.hot_path import public_pages
from content.media import serve_tenant_media
from content.quota_views import storage_checked
from content.search import search_view
from tenants.observability.health import healthz, readyz
from tenants.tariffs.limits import api_dimension, login_limited, tariff_limited

public_read = tariff_limited("public_reads_per_minute")
serve_page = public_pages(public_read(wagtail_views.serve))
article_write = tariff_limited(api_dimension)(ArticleWriteView.as_view())

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("admin/login/", login_limited(LoginView.as_view()), name="wagtailadmin_login"),
    path(
        "admin/images/add/",
        storage_checked(ImageCreateView.as_view(), "wagtailimages:index"),
    ),
    path(
        "admin/images/multiple/add/",
        storage_checked(ImageMultipleAddView.as_view(), "wagtailimages:index"),
    ),
    path(
        "admin/documents/add/",
        storage_checked(DocumentCreateView.as_view(), "wagtaildocs:index"),
    ),
    path(
        "admin/documents/multiple/add/",
        storage_checked(DocumentMultipleAddView.as_view(), "wagtaildocs:index"),
    ),
    path("admin/", include(wagtailadmin_urls)),
    path("documents/", include(wagtaildocs_urls)),
    path("api/v2/articles/", article_write, name="api-article-create"),
    path("api/v2/articles/<int:page_id>/", article_write, name="api-article-update"),
    path("api/v2/", api_router.urls),
    re_path(
        r"^media/tenants/(?P<schema>[^/]+)/(?P<path>.+)$",
        serve_tenant_media,
        name="tenant-media",
    ),
    path("search/", public_read(search_view), name="search"),
    path("sitemap.xml", public_pages(public_read(sitemap)), name="sitemap"),
    re_path(wagtail_urls.serve_pattern, serve_page, name="wagtail_serve"),
    path("", include(wagtail_urls)),
]

# A database outage answers 503 with Retry-After instead of a 500 (tenants.resilience)
handler500 = "tenants.resilience.outage.server_error"
