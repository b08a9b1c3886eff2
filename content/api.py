"""The headless content API (Wagtail API v2), per tenant at /api/v2/.

Every endpoint counts against the tenant's plan: reads against
``api_reads_per_minute``, writes against ``api_writes_per_minute``. Clients are
authenticated by ``content.integrations.authentication`` (DRF's default classes: a
tenant's Bearer token with the ``read`` scope, or an admin session, never HTTP Basic);
anonymous reads of live public pages stay allowed.
"""

from wagtail.api.v2.router import WagtailAPIRouter
from wagtail.api.v2.views import PagesAPIViewSet
from wagtail.documents.api.v2.views import DocumentsAPIViewSet
from wagtail.images.api.v2.views import ImagesAPIViewSet

from tenants.tariffs.limits import api_dimension, tariff_limited


class TariffLimitedAPIRouter(WagtailAPIRouter):
    def wrap_view(self, func):
        return tariff_limited(api_dimension)(super().wrap_view(func))


api_router = TariffLimitedAPIRouter("wagtailapi")
api_router.register_endpoint("pages", PagesAPIViewSet)
api_router.register_endpoint("images", ImagesAPIViewSet)
api_router.register_endpoint("documents", DocumentsAPIViewSet)
