"""Tariff-driven rate limits: the tenant's plan decides how much of the shared pool it
may use.

Counting is django-ratelimit's (fixed windows, counters in the Redis cache, keyed by the
tenant's schema through the tenant-aware cache key function), so a limit is exact across
every worker process and host. The rate is a callable that reads the plan from the
tenant object the gate resolved, so a plan change applies as soon as the host map
refreshes (well under a second) and costs no query.

If Redis is unreachable the decision fails open (the page is served, the failure logged
and counted) unless ``CMS_RATELIMIT_FAIL_CLOSED`` is set.
"""

import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.signals import setting_changed
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils import translation
from django_ratelimit.core import get_usage

from tenants.adapters import ratelimit as ratelimit_internals
from tenants.request_path.client_address import client_ip
from tenants.request_path.negotiation import wants_json
from tenants.request_state import request_state

logger = logging.getLogger(__name__)

# Window of each rate dimension, in django-ratelimit's period letters.
RATE_WINDOWS = {
    "public_reads_per_minute": ("m", 60),
    "public_reads_per_client_per_minute": ("m", 60),
    "api_reads_per_minute": ("m", 60),
    "api_writes_per_minute": ("m", 60),
    "publish_jobs_per_hour": ("h", 3600),
}

_failures_lock = threading.Lock()
limiter_failures = {"count": 0}


@dataclass(frozen=True)
class LimitDecision:
    dimension: str
    limit: int
    window_seconds: int
    remaining: int
    reset_seconds: int
    limited: bool

    def headers(self) -> dict[str, str]:
        """IETF draft-ietf-httpapi-ratelimit-headers (structured fields form)."""
        policy = self.dimension.replace("_", "-")
        return {
            "RateLimit-Policy": f'"{policy}";q={self.limit};w={self.window_seconds}',
            "RateLimit": f'"{policy}";r={self.remaining};t={self.reset_seconds}',
        }


class RateLimiterUnavailable(Exception):
    """The counter store could not be reached and the limiter is set to fail closed."""


def plan_rate(dimension: str) -> Callable[[str, HttpRequest], str | None]:
    """A django-ratelimit rate callable reading ``dimension`` from the tenant's plan."""
    letter, _ = RATE_WINDOWS[dimension]

    def rate(group: str, request: HttpRequest) -> str | None:
        tenant = getattr(request, "tenant", None)
        if tenant is None:
            return None
        return f"{getattr(tenant.plan, dimension)}/{letter}"

    return rate


# A dimension counted per client inside the tenant's own: checked first, so that a
# client over its share is refused without using up the tenant's allowance.
PER_CLIENT = {"public_reads_per_minute": "public_reads_per_client_per_minute"}
_CLIENT_DIMENSIONS = frozenset(PER_CLIENT.values())


def rate_key(group: str, request: HttpRequest) -> str:
    """What a dimension counts per: the tenant (its plan is its share of the pool,
    whoever its visitors are), or for a per-client dimension the client's address
    (tenants.request_path.client_address). The cache key function adds the schema."""
    if group in _CLIENT_DIMENSIONS:
        return "client:" + (client_ip(request) or "-")
    return request.tenant.schema_name


def record_limiter_failure() -> None:
    with _failures_lock:
        limiter_failures["count"] += 1


def check_rate(request: HttpRequest, dimension: str) -> LimitDecision | None:
    """Count one request against ``dimension``; None when no limit applies (no tenant,
    or Redis down while failing open)."""
    tenant = getattr(request, "tenant", None)
    if tenant is None:
        return None
    try:
        usage = get_usage(
            request,
            group=dimension,
            key=rate_key,
            rate=plan_rate(dimension),
            increment=True,
        )
    except Exception as exc:
        record_limiter_failure()
        if getattr(settings, "CMS_RATELIMIT_FAIL_CLOSED", False):
            logger.error("rate limiter unavailable, failing closed: %s", exc)
            raise RateLimiterUnavailable(str(exc)) from exc
        logger.warning("rate limiter unavailable, failing open: %s", exc)
        return None
    if usage is None:
        return None
    _, window = RATE_WINDOWS[dimension]
    return LimitDecision(
        dimension=dimension,
        limit=usage["limit"],
        window_seconds=window,
        remaining=max(0, usage["limit"] - usage["count"]),
        reset_seconds=max(1, usage["time_left"]),
        limited=usage["should_limit"],
    )


# Counting on django-ratelimit's counter inside a script of another rule's round
# trip: what its cache does for ``get_usage`` (``add`` the key with its expiry, then
# ``incr``); ``count_rate_by`` adds ``n`` requests at once (the batches of pages a
# worker answered from memory, tenants.request_path.local_hits).
RATE_COUNT_LUA = """
local function count_rate_by(counter, expiry_s, n)
  redis.call('SET', counter, 0, 'NX', 'EX', expiry_s)
  return redis.call('INCRBY', counter, n)
end
local function count_rate(counter, expiry_s)
  return count_rate_by(counter, expiry_s, 1)
end
"""


@dataclass(frozen=True)
class RateCounter:
    """django-ratelimit's counter of one request's dimension, for a caller that
    counts in its own Redis round trip (tenants.request_path.decision), with
    ``RATE_COUNT_LUA``."""

    dimension: str
    key: str
    limit: int
    expiry_seconds: int
    window_end: int

    def decision(self, count: int) -> LimitDecision:
        _, window = RATE_WINDOWS[self.dimension]
        return LimitDecision(
            dimension=self.dimension,
            limit=self.limit,
            window_seconds=window,
            remaining=max(0, self.limit - count),
            reset_seconds=max(1, self.window_end - int(time.time())),
            limited=count > self.limit,
        )


def rate_counter(request: HttpRequest, dimension: str) -> RateCounter | None:
    """The counter ``get_usage`` would count ``request`` on: its key, window and
    expiry computed by django-ratelimit's own functions, so a request counted with
    it (``SET NX`` then ``INCR``: ``add``-then-``incr`` in one trip) and one counted
    by ``get_usage`` in the ``tariff_limited`` decorator use up the same allowance.
    None when no limit applies. The tenant's schema must be active (cache keys
    carry it)."""
    if getattr(request, "tenant", None) is None or not getattr(
        settings, "RATELIMIT_ENABLE", True
    ):
        return None
    rate = plan_rate(dimension)(dimension, request)
    limit, period = ratelimit_internals.split_rate(rate)
    value = rate_key(dimension, request)
    window_end = ratelimit_internals.window_end(value, period)
    # the key changes once per window: hashing it once per window is enough
    memo = (connection.schema_name, dimension, rate, value, window_end)
    key = _counter_keys.get(memo)
    if key is None:
        cache = caches[settings.RATELIMIT_USE_CACHE]
        key = cache.make_key(
            ratelimit_internals.counter_key(
                group=dimension, window=window_end, rate=rate, value=value
            )
        )
        if len(_counter_keys) >= 10_000:
            _counter_keys.clear()
        _counter_keys[memo] = key
    return RateCounter(
        dimension, key, limit, ratelimit_internals.counter_expiry(period), window_end
    )


_counter_keys: dict[tuple, str] = {}


@functools.lru_cache(maxsize=256)
def _rendered_refusal(template_name: str, retry_after: int, language: str) -> str:
    return render_to_string(template_name, {"retry_after": retry_after})


def refusal_page(template_name: str, retry_after: int) -> str:
    """The page of a refusal (429, 503), which shows nothing but the wait: rendered
    once per template, wait and language, so that a flood of refused requests
    renders no template. Rendered again after a setting changes (``TEMPLATES``)."""
    return _rendered_refusal(template_name, retry_after, translation.get_language())


def _forget_refusal_pages(**kwargs) -> None:
    _rendered_refusal.cache_clear()


setting_changed.connect(_forget_refusal_pages)


def limited_response(request: HttpRequest, decision: LimitDecision) -> HttpResponse:
    """429 with Retry-After: JSON for API clients, a friendly page for visitors."""
    retry_after = str(decision.reset_seconds)
    if wants_json(request):
        body = json.dumps(
            {
                "error": "rate_limited",
                "message": (
                    f"This site's plan allows {decision.limit} requests per "
                    f"{decision.window_seconds} s for this kind of request. "
                    f"Try again in {retry_after} s."
                ),
                "limit": decision.dimension,
                "retry_after": decision.reset_seconds,
            }
        )
        response = HttpResponse(body, status=429, content_type="application/json")
    else:
        body = refusal_page("tenants/rate_limited.html", decision.reset_seconds)
        response = HttpResponse(body, status=429)
    response["Retry-After"] = retry_after
    for name, value in decision.headers().items():
        response[name] = value
    request_state(request).rejection = decision.dimension  # the limit, for metrics
    return response


def unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 when the limiter must fail closed and cannot decide."""
    if wants_json(request):
        body = json.dumps(
            {"error": "unavailable", "message": "Please try again in a moment."}
        )
        response = HttpResponse(body, status=503, content_type="application/json")
    else:
        response = HttpResponse(refusal_page("tenants/busy.html", 5), status=503)
    response["Retry-After"] = "5"
    request_state(request).rejection = "limiter_unavailable"
    return response


def api_dimension(request: HttpRequest) -> str:
    """Reads and writes of the content API have separate allowances."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return "api_reads_per_minute"
    return "api_writes_per_minute"


def counted_decision(request: HttpRequest, dimension: str) -> LimitDecision | None:
    """The decision of a count already made for this request on the public page
    path (tenants.request_path.decision), so that the decorator does not count it
    twice."""
    decision = request_state(request).rate
    return (
        decision if decision is not None and decision.dimension == dimension else None
    )


def _count_with_client_share(
    request: HttpRequest, dimension: str
) -> LimitDecision | None:
    """Count the client's share first (if the dimension has one), then the tenant's;
    a client over its share is refused without counting against the tenant."""
    client_dimension = PER_CLIENT.get(dimension)
    if client_dimension is not None:
        client_decision = check_rate(request, client_dimension)
        if client_decision is not None and client_decision.limited:
            return client_decision
    return check_rate(request, dimension)


def tariff_limited(dimension: str | Callable[[HttpRequest], str]) -> Callable:
    """Decorate a view so each call counts against the plan's ``dimension`` (a name,
    or a function of the request returning one)."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            name = dimension(request) if callable(dimension) else dimension
            decision = counted_decision(request, name)
            if decision is None:
                try:
                    decision = _count_with_client_share(request, name)
                except RateLimiterUnavailable:
                    return unavailable_response(request)
            if decision is not None and decision.limited:
                return limited_response(request, decision)
            response = view(request, *args, **kwargs)
            if decision is not None:
                for name, value in decision.headers().items():
                    response[name] = value
            return response

        return wrapper

    return decorator
