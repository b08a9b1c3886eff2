"""Public pages' hot path: one Redis round trip decides a page request.

``PublicPageMiddleware`` (and content.edge, before Django's handler) handles GET and
HEAD requests for the views marked with ``public_pages`` (Wagtail's page serving, the
sitemap). One Lua script, run with the tenant's keys, does in order:

1. admission (tenants.tariffs.admission's sorted set of slots): over the plan's
   ``concurrent_requests`` the request is refused (503) and nothing is counted;
2. the count against ``public_reads_per_minute`` on django-ratelimit's own counter
   (tenants.tariffs.limits.rate_counter): over the limit, 429;
3. for an anonymous visitor, the page cache (content.page_cache): if the tenant's
   current generation has an entry for this host, path and query, the entry is
   returned and the request is metered right there (tenants.metering.usage's day
   counter, traffic window and latency histogram) - a hit is answered, counted and
   metered in this one round trip and holds no slot beyond it;
4. otherwise a slot is taken for the view to render in; it is released in the
   request's metering round trip after the response.

The script runs where the data is, so the check-then-take of the slot and the count
are atomic, and nothing waits on a second round trip before a cached page goes out.
If Redis fails, the regular path decides (tenants.tariffs.admission's middleware and the
``tariff_limited`` decorator, with the fail-open or fail-closed policy).
"""

import logging
import pickle
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils.cache import patch_vary_headers

from content.page_cache import (
    STATUS_HEADER,
    CachedPage,
    cache_seconds,
    entry_keys,
    is_cacheable_request,
    is_cacheable_response,
    start_generation,
    store,
)
from tenants.metering.usage import METER_LUA, defer_to_metering, request_counts
from tenants.observability import metrics
from tenants.redis_store.scripts import script
from tenants.tariffs.admission import busy_response, lease_ms, slots_key
from tenants.tariffs.limits import LimitDecision, limited_response, rate_counter

logger = logging.getLogger(__name__)

READ_DIMENSION = "public_reads_per_minute"
REFUSED, LIMITED, HIT, RENDER = 0, 1, 2, 3

# KEYS: slots, rate counter, generation, page entry, day counters, traffic window,
#       latency histogram
# ARGV: cap, lease ms, slot token, rate expiry s, rate limit ('' = none), look up the
#       page ('1'/'0'), meter a hit ('1'/'0'), day counter field, schema, latency
#       bucket, window expiry s
_DECIDE = (
    """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return {0, 0}
end
local count = 0
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[2], 0, 'NX', 'EX', tonumber(ARGV[4]))
  count = redis.call('INCR', KEYS[2])
  if count > tonumber(ARGV[5]) then
    return {1, count}
  end
end
local generation = false
if ARGV[6] == '1' then
  generation = redis.call('GET', KEYS[3])
  if generation then
    local entry = redis.call('HMGET', KEYS[4], 'g', 'p')
    if entry[1] == generation and entry[2] then
      if ARGV[7] == '1' then
        local day, window, latency = KEYS[5], KEYS[6], KEYS[7]
        local field, schema, bucket = ARGV[8], ARGV[9], ARGV[10]
        local expiry = tonumber(ARGV[11])
"""
    + METER_LUA
    + """
      end
      return {2, count, generation, entry[2]}
    end
  end
end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return {3, count, generation}
"""
)


def public_pages(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Mark ``view`` as serving public pages: its GET and HEAD requests take the hot
    path. The view keeps its own rate-limit decorator, which counts the requests
    that do not (POSTs, or any request while Redis fails)."""
    view.cms_public_page = True
    return view


# Paths are remembered per URLconf; a bound keeps random paths from growing memory.
MAX_REMEMBERED_PATHS = 20_000
_page_paths: dict[tuple[str | None, str], bool] = {}


def serves_pages(urlconf: str | None, path_info: str) -> bool:
    """Whether ``path_info`` resolves to a view marked with ``public_pages``."""
    key = (urlconf, path_info)
    known = _page_paths.get(key)
    if known is None:
        try:
            match = resolve(path_info, urlconf=urlconf)
            known = getattr(match.func, "cms_public_page", False)
        except Resolver404:
            known = False
        if len(_page_paths) >= MAX_REMEMBERED_PATHS:
            _page_paths.clear()
        _page_paths[key] = known
    return known


@dataclass(frozen=True)
class HotPath:
    """What the round trip decided for one request."""

    outcome: int
    schema_name: str
    token: str
    decision: LimitDecision | None
    looked_up: bool
    metered: bool = False
    generation: int | None = None
    entry: CachedPage | None = None

    def release(self, pipe) -> None:
        pipe.zrem(slots_key(self.schema_name), self.token)


def _hit_metering(
    request: HttpRequest, tenant, seconds: float, meter: bool
) -> tuple[list, list]:
    """The script's keys and arguments for counting a hit (tenants.metering.usage);
    place holders when it will not count one, so that a page to render builds none."""
    if not meter:
        return ["-", "-", "-"], ["", tenant.schema_name, 0, 0]
    counts = request_counts(
        schema=tenant.schema_name, request=request, status=200, seconds=seconds
    )
    return (
        [counts.live_key, counts.requests_key, counts.latency_key],
        [
            counts.live_field or "",
            tenant.schema_name,
            counts.latency_bucket,
            counts.ttl,
        ],
    )


def take_hot_path(
    request: HttpRequest, tenant, *, seconds_so_far: float = 0.0
) -> HotPath | None:
    """Run the decision for ``request`` of ``tenant`` (whose schema must be active:
    cache keys carry it). None when Redis failed."""
    try:
        counter = rate_counter(request, READ_DIMENSION)
        look_up = cache_seconds() > 0 and is_cacheable_request(request)
        generation_key, entry_key = entry_keys(request)
        # the busiest-tenants refresh rides on the regular metering round trip
        meter_hit = look_up and not metrics.tenant_labels.refresh_due()
        meter_keys, meter_args = _hit_metering(
            request, tenant, seconds_so_far, meter_hit
        )
        token = uuid.uuid4().hex
        reply = script(_DECIDE)(
            keys=[
                slots_key(tenant.schema_name),
                counter.key if counter else "-",
                generation_key,
                entry_key,
                *meter_keys,
            ],
            args=[
                tenant.plan.concurrent_requests,
                lease_ms(),
                token,
                counter.expiry_seconds if counter else 0,
                counter.limit if counter else "",
                "1" if look_up else "0",
                "1" if meter_hit else "0",
                *meter_args,
            ],
        )
    except Exception as exc:  # noqa: BLE001 - the regular path applies the policy
        logger.warning("public page hot path unavailable: %s", exc)
        return None
    outcome, count = int(reply[0]), int(reply[1])
    return HotPath(
        outcome=outcome,
        schema_name=tenant.schema_name,
        token=token,
        decision=counter.decision(count) if counter and outcome != REFUSED else None,
        looked_up=look_up,
        metered=outcome == HIT and meter_hit,
        generation=int(reply[2]) if len(reply) > 2 and reply[2] else None,
        entry=pickle.loads(reply[3]) if outcome == HIT else None,
    )


def settle(request: HttpRequest, hot_path: HotPath) -> HttpResponse | None:
    """Act on the decision: refuse (503, 429), answer a cache hit, or None to let
    the view render (its slot released in the metering round trip)."""
    if hot_path.outcome == REFUSED:
        return busy_response(request)
    request.cms_admitted = True
    decision = hot_path.decision
    if decision is not None:
        request.cms_rate_decision = decision
    if hot_path.outcome == LIMITED:
        return limited_response(request, decision)
    if hot_path.outcome == RENDER:
        defer_to_metering(request, hot_path.release)
        return None
    request.cms_metered = hot_path.metered  # counted by the script
    response = hot_path.entry.response()
    # Signed-in editors get other content: downstream caches must know.
    patch_vary_headers(response, ("Cookie",))
    response[STATUS_HEADER] = "hit"
    if decision is not None:
        for name, value in decision.headers().items():
            response[name] = value
    return response


# content.edge hands the round trip it made for a request on to the middleware.
EDGE_HOT_PATH = "cms.hot_path"


class PublicPageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = getattr(request, "tenant", None)
        if (
            tenant is None
            or request.method not in ("GET", "HEAD")
            or not serves_pages(getattr(request, "urlconf", None), request.path_info)
        ):
            return self.get_response(request)
        if EDGE_HOT_PATH in request.META:  # None: the edge's round trip failed
            hot_path = request.META.pop(EDGE_HOT_PATH)
        else:
            hot_path = take_hot_path(request, tenant)
        if hot_path is None:
            return self.get_response(request)
        answer = settle(request, hot_path)
        if answer is not None:
            return answer
        generation = hot_path.generation
        if hot_path.looked_up and generation is None:
            generation = start_generation()
        response = self.get_response(request)
        if generation is not None and is_cacheable_response(request, response):
            store(request, response, generation)
            response[STATUS_HEADER] = "miss"
        return response
