"""The headless content API (Wagtail API v2), per tenant at /api/v2/.

Every endpoint counts against the tenant's plan: reads against
``api_reads_per_minute``, writes against ``api_writes_per_minute``. Clients are
authenticated by ``content.integrations.authentication`` (DRF's default classes: a
tenant's Bearer token with the ``read`` scope, or an admin session, never HTTP Basic);
anonymous reads of live public pages stay allowed. A path under /api/v2/ that no
endpoint serves answers the API's JSON 404, not the site's HTML page.
"""

from django.http import HttpRequest, JsonResponse
from wagtail.api.v2.filters import SearchFilter
from wagtail.api.v2.pagination import WagtailPagination
from wagtail.api.v2.router import WagtailAPIRouter
from wagtail.api.v2.utils import BadRequestError
from wagtail.api.v2.views import PagesAPIViewSet
from wagtail.documents.api.v2.views import DocumentsAPIViewSet
from wagtail.images.api.v2.views import ImagesAPIViewSet

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


# the endpoints a client is pointed to when it asks for one that does not exist
ENDPOINTS = (
    "/api/v2/pages/",
    "/api/v2/images/",
    "/api/v2/documents/",
    "/api/v2/articles/",
    "/api/v2/jobs/<id>/",
)
# a path echoed back is cut to this length (it may be anything a client sent)
ECHOED_PATH_CHARS = 200


@tariff_limited(api_dimension)
def unknown_endpoint(request: HttpRequest) -> JsonResponse:
    """Any method on a path under /api/v2/ that no endpoint serves: without it, such a
    path fell through to the page-serving view and an API client got the site's
    HTML 404. Counted against the plan's API allowance like the API's own paths
    (the edge router counts everything under /api/ as API too)."""
    path = request.path
    if len(path) > ECHOED_PATH_CHARS:
        path = path[:ECHOED_PATH_CHARS] + "..."
    return JsonResponse(
        {
            "error": "not_found",
            "message": f"No API endpoint at {path}. "
            f"The endpoints are: {', '.join(ENDPOINTS)}.",
        },
        status=404,
    )
