"""Per-tenant concurrency caps across the whole worker pool.

At most ``plan.concurrent_requests`` requests of one tenant are in flight at once,
counted in Redis so the cap holds across processes and hosts. Over the cap a request
gets an immediate 503 with Retry-After instead of queueing behind busy workers, so one
tenant's burst cannot occupy the shared pool.

A slot is a member of a sorted set scored by its expiry time: released explicitly on
every path (the middleware's ``finally``), and dropped by the next admission after its
lease ends if the worker died holding it.
"""

import json
import logging
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django_redis import get_redis_connection

from tenants.redis_store.scripts import script
from tenants.tariffs.limits import limiter_failures, wants_json

logger = logging.getLogger(__name__)

# Atomic check-and-take using Redis' own clock, so hosts with skewed clocks agree.
_ADMIT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  return 1
end
return 0
"""


def slots_key(schema_name: str) -> str:
    return f"cms:inflight:{schema_name}"


def lease_ms() -> int:
    return int(getattr(settings, "CMS_CONCURRENCY_LEASE_SECONDS", 35) * 1000)


def acquire_slot(schema_name: str, cap: int) -> str | None:
    """Take one of the tenant's ``cap`` slots; return its token, or None when full."""
    token = uuid.uuid4().hex
    admitted = script(_ADMIT)(
        keys=[slots_key(schema_name)], args=[cap, lease_ms(), token]
    )
    return token if admitted else None


def release_slot(schema_name: str, token: str) -> None:
    get_redis_connection("ratelimit").zrem(slots_key(schema_name), token)


def in_flight(schema_name: str) -> int:
    return get_redis_connection("ratelimit").zcard(slots_key(schema_name))


def busy_response(request: HttpRequest) -> HttpResponse:
    if wants_json(request):
        body = json.dumps(
            {
                "error": "too_many_concurrent_requests",
                "message": "This site is handling as many requests as its plan "
                "allows. Try again in a second.",
            }
        )
        response = HttpResponse(body, status=503, content_type="application/json")
    else:
        body = render_to_string("tenants/busy.html", {"retry_after": 1})
        response = HttpResponse(body, status=503)
    response["Retry-After"] = "1"
    response.cms_rejection = "concurrent_requests"
    return response


class TenantAdmissionMiddleware:
    """Admission control for visitors and API clients; the admin is exempt so editors
    are never locked out by their visitors."""

    EXEMPT_PREFIXES = ("/admin/", "/static/", "/healthz", "/readyz")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = getattr(request, "tenant", None)
        if (
            tenant is None
            or getattr(request, "cms_admitted", False)  # content.hot_path did it
            or request.path.startswith(self.EXEMPT_PREFIXES)
        ):
            return self.get_response(request)
        try:
            token = acquire_slot(tenant.schema_name, tenant.plan.concurrent_requests)
        except Exception as exc:  # noqa: BLE001 - Redis down: decide by policy
            limiter_failures["count"] += 1
            if getattr(settings, "CMS_RATELIMIT_FAIL_CLOSED", False):
                logger.error("admission unavailable, failing closed: %s", exc)
                return busy_response(request)
            logger.warning("admission unavailable, failing open: %s", exc)
            return self.get_response(request)
        if token is None:
            return busy_response(request)
        try:
            return self.get_response(request)
        finally:
            try:
                release_slot(tenant.schema_name, token)
            except Exception:
                logger.exception("could not release a concurrency slot")
