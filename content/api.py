"""The headless content API (Wagtail API v2), per tenant at /api/v2/.

Every endpoint counts against the tenant's plan: reads against
``api_reads_per_minute``, writes against ``api_writes_per_minute``. Clients are
authenticated by ``content.integrations.authentication`` (DRF's default classes: a
tenant's Bearer token with the ``read`` scope, or an admin session, never HTTP Basic);
anonymous reads of live public pages stay allowed. A path under /api/v2/ that no
endpoint serves answers the API's JSON 404, not the site's HTML page.
"""

import functools

from django.urls import URLResolver, get_resolver
from rest_framework.permissions import AllowAny
from wagtail.api.v2.filters import SearchFilter
from wagtail.api.v2.pagination import WagtailPagination
from wagtail.api.v2.router import WagtailAPIRouter
from wagtail.api.v2.utils import BadRequestError
from wagtail.api.v2.views import PagesAPIViewSet
from wagtail.documents.api.v2.views import DocumentsAPIViewSet
from wagtail.images.api.v2.views import ImagesAPIViewSet

from content.api_views import TokenAPIView, api_error
from tenants.tariffs.limits import api_dimension, tariff_limited

SEARCH_OPERATORS = ("and", "or")


class TariffLimitedAPIRouter(WagtailAPIRouter):
    def wrap_view(self, func):
        return tariff_limited(api_dimension)(super().wrap_view(func))


class CheckedSearchFilter(SearchFilter):
    """Wagtail's search filter, with ``?search_operator=`` checked first: Wagtail hands
    it to the search backend as it is, whose ValueError for anything but and/or
    would be a 500 (found by the fuzz tests' random examples)."""

    def filter_queryset(self, request, queryset, view):
        operator = request.GET.get("search_operator") or ""
        if (
            "search" in request.GET
            and operator
            and operator.lower() not in SEARCH_OPERATORS
        ):
            raise BadRequestError("search_operator must be 'and' or 'or'")
        return super().filter_queryset(request, queryset, view)


class BoundedPagination(WagtailPagination):
    """Wagtail's pagination, with an offset past the last result answered as an
    empty page without a query: Wagtail slices with any offset it parsed, and one
    beyond PostgreSQL's bigint (``?offset=9223372036854775808``) was a 500 (found by
    the fuzz tests in CI). An offset past the end finds nothing at any size, so the
    answer is the one a reader expects: no items, and the real ``total_count``."""

    def paginate_queryset(self, queryset, request, view=None):
        page = super().paginate_queryset(queryset, request, view)
        if int(request.GET.get("offset", 0)) >= self.total_count:
            return []
        return page


def _checked_search(backends: list) -> list:
    return [CheckedSearchFilter if b is SearchFilter else b for b in backends]


class PagesAPI(PagesAPIViewSet):
    filter_backends = _checked_search(PagesAPIViewSet.filter_backends)
    pagination_class = BoundedPagination


class ImagesAPI(ImagesAPIViewSet):
    filter_backends = _checked_search(ImagesAPIViewSet.filter_backends)
    pagination_class = BoundedPagination


class DocumentsAPI(DocumentsAPIViewSet):
    filter_backends = _checked_search(DocumentsAPIViewSet.filter_backends)
    pagination_class = BoundedPagination


api_router = TariffLimitedAPIRouter("wagtailapi")
api_router.register_endpoint("pages", PagesAPI)
api_router.register_endpoint("images", ImagesAPI)
api_router.register_endpoint("documents", DocumentsAPI)


# a path echoed back is cut to this length (it may be anything a client sent)
ECHOED_PATH_CHARS = 200
API_PREFIX = "api/v2/"
UNKNOWN_ENDPOINT = "api-unknown-endpoint"  # the URL name of the catch-all below


@functools.cache
def endpoint_paths(urlconf: str | None = None) -> tuple[str, ...]:
    """Every endpoint under /api/v2/, read off the URLconf (the router's endpoints
    and the API's own views), so the 404's list cannot miss a new one."""
    paths = []
    for entry in get_resolver(urlconf).url_patterns:
        route = str(entry.pattern).lstrip("^")
        if not route.startswith(API_PREFIX) or (
            getattr(entry, "name", None) == UNKNOWN_ENDPOINT
        ):
            continue
        if isinstance(entry, URLResolver):  # the router: one include per endpoint
            paths += [
                f"/{route}{str(sub.pattern).lstrip('^')}" for sub in entry.url_patterns
            ]
        else:
            paths.append(f"/{route}")
    return tuple(paths)


class UnknownEndpointView(TokenAPIView):
    """Any method on a path under /api/v2/ that no endpoint serves: without it, such a
    path fell through to the page-serving view and an API client got the site's
    HTML 404 (a write, CSRF's HTML 403). A view of the API's own kind, so a bad token
    is the same 401 as elsewhere; anyone may be told that nothing is here."""

    permission_classes = [AllowAny]

    def not_found(self, request, *args, **kwargs):
        path = request.path
        if len(path) > ECHOED_PATH_CHARS:
            path = path[:ECHOED_PATH_CHARS] + "..."
        endpoints = ", ".join(endpoint_paths(getattr(request, "urlconf", None)))
        return api_error(
            "not_found",
            f"No API endpoint at {path}. The endpoints are: {endpoints}.",
            404,
        )

    get = post = put = patch = delete = options = not_found


# Counted against the plan's API allowance like the API's own paths (the edge router
# counts everything under /api/ as API too).
unknown_endpoint = tariff_limited(api_dimension)(UnknownEndpointView.as_view())
