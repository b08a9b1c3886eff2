"""URLs of a tenant's host: Wagtail admin, API, media and the tenant's pages.

Public pages and the API are wrapped in the tariff's rate limits here (public pages
are marked with ``public_pages``: tenants.request_path.decision counts their GETs
against the same limit in the round trip that also reads the page cache); the admin
is not (editors are never locked out by their visitors) except for its login, which is
limited against password guessing. API clients are authenticated in one place,
``content.integrations.authentication`` (token or session; no HTTP Basic).
"""

from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from wagtail import urls as wagtail_urls
from wagtail import views as wagtail_views
from wagtail.admin import urls as wagtailadmin_urls
from wagtail.admin.views.account import LoginView, PasswordResetView
from wagtail.contrib.sitemaps.views import sitemap
from wagtail.documents import urls as wagtaildocs_urls
from wagtail.documents.views import serve as wagtail_document_views

from content.api import API_PREFIX, UNKNOWN_ENDPOINT, api_router, unknown_endpoint
from content.api_write import ArticlesView, ArticleView, JobStatusView
from content.media import protected, serve_tenant_media
from content.search import search_view
from tenants.observability.health import healthz, readyz
from tenants.request_path.public_pages import public_pages
from tenants.tariffs.limits import api_dimension, tariff_limited
from tenants.tariffs.login_limits import login_limited, posted_field, url_argument

public_read = tariff_limited("public_reads_per_minute")
serve_page = public_pages(public_read(wagtail_views.serve))
article_create = tariff_limited(api_dimension)(ArticlesView.as_view())
article_update = tariff_limited(api_dimension)(ArticleView.as_view())
job_status = tariff_limited(api_dimension)(JobStatusView.as_view())

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    # Every way to present a password, or to ask for a new one, is login-limited
    # (tenants.tariffs.login_limits): per client, per account, before any hashing.
    path("admin/login/", login_limited(LoginView.as_view()), name="wagtailadmin_login"),
    path(
        "admin/password_reset/",
        login_limited(PasswordResetView.as_view(), account=posted_field("email")),
        name="wagtailadmin_password_reset",
    ),
    path("admin/", include(wagtailadmin_urls)),
    # Wagtail's document view (collection privacy checked there), with the same
    # headers as the media route; its password form is a password guess like a login.
    re_path(
        r"^documents/(\d+)/(.*)$",
        protected(wagtail_document_views.serve),
        name="wagtaildocs_serve",
    ),
    path(
        "documents/authenticate_with_password/<int:restriction_id>/",
        login_limited(
            wagtail_document_views.authenticate_with_password,
            account=url_argument("restriction_id"),
        ),
        name="wagtaildocs_authenticate_with_password",
    ),
    path("documents/", include(wagtaildocs_urls)),
    path(f"{API_PREFIX}articles/", article_create, name="api-article-create"),
    path(
        f"{API_PREFIX}articles/<int:page_id>/",
        article_update,
        name="api-article-update",
    ),
    path(f"{API_PREFIX}jobs/<int:job_id>/", job_status, name="api-job-status"),
    path(API_PREFIX, api_router.urls),
    re_path(f"^{API_PREFIX}", unknown_endpoint, name=UNKNOWN_ENDPOINT),
    re_path(
        r"^media/tenants/(?P<schema>[^/]+)/(?P<path>.+)$",
        serve_tenant_media,
        name="tenant-media",
    ),
    path("search/", public_read(search_view), name="search"),
    path("sitemap.xml", public_pages(public_read(sitemap)), name="sitemap"),
    # Page privacy's own views (unlock a password-protected page, log in to see a
    # page for signed-in users or groups) before the page-serving pattern, which
    # would otherwise take "_util/..." for a page path and answer 404.
    path(
        "_util/authenticate_with_password/<int:page_view_restriction_id>/<int:page_id>/",
        login_limited(
            wagtail_views.authenticate_with_password,
            account=url_argument("page_view_restriction_id"),
        ),
        name="wagtailcore_authenticate_with_password",
    ),
    path(
        "_util/login/",
        login_limited(
            auth_views.LoginView.as_view(
                template_name=wagtail_urls.WAGTAIL_FRONTEND_LOGIN_TEMPLATE
            )
        ),
        name="wagtailcore_login",
    ),
    re_path(wagtail_urls.serve_pattern, serve_page, name="wagtail_serve"),
    path("", include(wagtail_urls)),
]

# A database outage answers 503 with Retry-After instead of a 500 (tenants.resilience)
handler500 = "tenants.resilience.outage.server_error"
