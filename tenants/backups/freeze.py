"""Refusing a tenant's writes while a restore swaps its data in.

A restore sets ``Tenant.writes_frozen_until`` and bumps the host map, then waits for
every process to have seen it (the map is checked every
``CMS_TENANT_CACHE_CHECK_SECONDS``) before it changes anything. The check here reads
the tenant the gate already resolved, so it costs no query and no Redis round trip.
A refused write gets 503 with ``Retry-After``: the client knows to send it again, and
nothing it sent is silently dropped. Reads are never refused.
"""

import datetime as dt
import math
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from tenants.models import Tenant
from tenants.registry.resolution import invalidate_tenant_map

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def freeze_writes(*, slug: str, seconds: int) -> None:
    """Refuse the tenant's writes for up to ``seconds`` (lifted by ``thaw_writes``,
    or by time if the restoring process dies), once every process knows."""
    until = timezone.now() + dt.timedelta(seconds=seconds)
    Tenant.objects.filter(schema_name=slug).update(writes_frozen_until=until)
    invalidate_tenant_map()
    time.sleep(settings.CMS_TENANT_CACHE_CHECK_SECONDS + 0.1)


def thaw_writes(*, slug: str) -> None:
    Tenant.objects.filter(schema_name=slug).update(writes_frozen_until=None)
    invalidate_tenant_map()


def frozen_for(tenant: Tenant | None) -> int:
    """Seconds the tenant's writes stay refused (0: not frozen)."""
    until = getattr(tenant, "writes_frozen_until", None)
    if until is None:
        return 0
    left = (until - timezone.now()).total_seconds()
    return max(0, math.ceil(left))


class WriteFreezeMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in SAFE_METHODS:
            left = frozen_for(getattr(request, "tenant", None))
            if left:
                response = HttpResponse(
                    "Changes to this site are paused for a moment (a restore or a "
                    "move to new servers). Please send your change again shortly.\n",
                    status=503,
                    content_type="text/plain; charset=utf-8",
                )
                response["Retry-After"] = str(min(left, 10))
                return response
        return self.get_response(request)
