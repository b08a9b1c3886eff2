"""The decision a public page request gets, in one Redis round trip.

For GET and HEAD requests of the views marked ``public_pages``, one Lua script, run
with the tenant's keys, applies the rules of the request path in order - each rule
written once, in the module that owns it, and composed here:

1. admission (tenants.tariffs.admission, ``ADMISSION_LUA``): over the plan's
   ``concurrent_requests`` the request is refused (503) and no read is counted;
2. the counts on django-ratelimit's own counters (tenants.tariffs.limits,
   ``RATE_COUNT_LUA``): first the client's share
   (``public_reads_per_client_per_minute``: over it, 429, and the tenant's allowance
   is not touched), then the tenant's ``public_reads_per_minute`` (over it, 429);
   a refusal is metered right there (``METER_LUA``), so that a flood of refused
   requests costs one round trip each, not two;
3. for a request the cache policy allows, the page cache
   (tenants.request_path.page_cache, ``PAGE_LOOKUP_LUA``): a current entry is
   returned and the request metered right there (tenants.metering.counters,
   ``METER_LUA``) - a hit is answered, counted and metered in this one round trip and
   holds no slot beyond it;
4. otherwise a slot is taken for the view to render in; it is released in the
   request's metering round trip after the response. The render is checked against
   the plan's pace (tenants.tariffs.admission, ``PACE_LUA``): beyond it, the edge
   lets it run only while the pool has a database slot free.

The script runs where the data is, so the check-then-take of the slot and the count
are atomic, and nothing waits on a second round trip before a cached page goes out.
If Redis fails the decision is None and the regular path decides (the admission
middleware and the ``tariff_limited`` decorator, with the fail-open or fail-closed
policy). ``PageDecision`` is typed and travels in the request's state
(tenants.request_state), from the WSGI edge into Django when the edge could not answer.
"""

import logging
import pickle
from dataclasses import dataclass
from enum import IntEnum

from django.http import HttpRequest, HttpResponse
from redis.exceptions import TimeoutError as RedisTimeoutError

from tenants.metering.counters import (
    METER_LUA,
    defer_to_metering,
    rejection_counts,
    request_counts,
)
from tenants.models import Tenant
from tenants.observability import metrics
from tenants.redis_store.scripts import NOW_MS_LUA, compose, script
from tenants.request_path.page_cache import (
    PAGE_LOOKUP_LUA,
    STATUS_HEADER,
    CachedPage,
    cache_seconds,
    entry_key,
    generation_key,
    is_cacheable_request,
)
from tenants.request_state import request_state
from tenants.tariffs.admission import (
    ADMISSION_LUA,
    PACE_LUA,
    busy_response,
    lease_ms,
    new_token,
    pace_arguments,
    pace_key,
    queue_release,
    slots_key,
)
from tenants.tariffs.limits import (
    PER_CLIENT,
    RATE_COUNT_LUA,
    LimitDecision,
    RateCounter,
    limited_response,
    rate_counter,
)

logger = logging.getLogger(__name__)

READ_DIMENSION = "public_reads_per_minute"
CLIENT_READ_DIMENSION = PER_CLIENT[READ_DIMENSION]
UNUSED_KEY = "-"


class Outcome(IntEnum):
    REFUSED = 0  # over the concurrency cap
    LIMITED = 1  # over the plan's rate
    HIT = 2  # answered from the page cache
    RENDER = 3  # a slot is held; the view renders


# KEYS: slots, tenant's rate counter, client's rate counter, generation, page entry,
#       day counters, traffic window, latency histogram, 429 window, 503 window, pace
# ARGV: cap, lease ms, slot token, tenant's rate expiry s, tenant's limit ('' = none),
#       client's rate expiry s, client's limit ('' = none), look up the page
#       ('1'/'0'), meter a hit or a refusal ('1'/'0'), day counter field of a hit,
#       schema, latency bucket, window expiry s, day counter field of a 429, of a 503,
#       pace interval ms ('' = none), pace tolerance ms
# Reply: outcome, tenant's count, client's count[, generation[, page | beyond pace]]
_DECIDE = compose(
    NOW_MS_LUA,
    ADMISSION_LUA,
    PACE_LUA,
    RATE_COUNT_LUA,
    PAGE_LOOKUP_LUA,
    METER_LUA,
    body="""
local function meter_refusal(field, rejections)
  if ARGV[9] == '1' then
    local expiry = tonumber(ARGV[13])
    meter(KEYS[6], field, KEYS[7], KEYS[8], ARGV[12], ARGV[11], expiry)
    meter_rejection(rejections, ARGV[11], expiry)
  end
end
local now = now_ms()
if not slot_free(KEYS[1], tonumber(ARGV[1]), now) then
  meter_refusal(ARGV[15], KEYS[10])
  return {0, 0, 0}
end
local count, client_count = 0, 0
if ARGV[7] ~= '' then
  client_count = count_rate(KEYS[3], tonumber(ARGV[6]))
  if client_count > tonumber(ARGV[7]) then
    meter_refusal(ARGV[14], KEYS[9])
    return {1, 0, client_count}
  end
end
if ARGV[5] ~= '' then
  count = count_rate(KEYS[2], tonumber(ARGV[4]))
  if count > tonumber(ARGV[5]) then
    meter_refusal(ARGV[14], KEYS[9])
    return {1, count, client_count}
  end
end
local generation = false
if ARGV[8] == '1' then
  local page
  generation, page = cached_page(KEYS[4], KEYS[5])
  if page then
    if ARGV[9] == '1' then
      meter(KEYS[6], ARGV[10], KEYS[7], KEYS[8], ARGV[12], ARGV[11], tonumber(ARGV[13]))
    end
    return {2, count, client_count, generation, page}
  end
end
take_slot(KEYS[1], ARGV[3], tonumber(ARGV[2]), now)
local beyond = 0
if ARGV[16] ~= '' then
  beyond = beyond_pace(KEYS[11], tonumber(ARGV[16]), tonumber(ARGV[17]), now)
end
return {3, count, client_count, generation, beyond}
""",
)


@dataclass(frozen=True)
class PageDecision:
    """What the round trip decided for one public page request."""

    outcome: Outcome
    schema_name: str
    token: str
    rate: LimitDecision | None
    looked_up: bool
    metered: bool = False
    generation: int | None = None
    entry: CachedPage | None = None
    # A render beyond the plan's pace: it gives way when the pool is busy.
    beyond_pace: bool = False
    # Each rate counter of the request with its count, this request included.
    counted: tuple[tuple[RateCounter, int], ...] = ()

    def release(self, pipe) -> None:
        queue_release(pipe, self.schema_name, self.token)


def _metering(
    request: HttpRequest, tenant: Tenant, seconds: float, meter: bool
) -> tuple[list, list]:
    """The script's keys and arguments for metering a hit or a refusal; place
    holders when it will meter neither, so that such a decision builds none."""
    schema = tenant.schema_name
    if not meter:
        return [UNUSED_KEY] * 5, ["", schema, 0, 0, "", ""]
    counts = request_counts(schema=schema, request=request, status=200, seconds=seconds)
    field_429, window_429 = rejection_counts(schema=schema, request=request, status=429)
    field_503, window_503 = rejection_counts(schema=schema, request=request, status=503)
    return (
        [
            counts.live_key,
            counts.requests_key,
            counts.latency_key,
            window_429,
            window_503,
        ],
        [
            counts.live_field or "",
            schema,
            counts.latency_bucket,
            counts.ttl,
            field_429,
            field_503,
        ],
    )


def decide_page_request(
    request: HttpRequest, tenant: Tenant, *, seconds_so_far: float = 0.0
) -> PageDecision | None:
    """Run the decision for a public page ``request`` of ``tenant``. None when Redis
    failed (the regular path then applies the policy)."""
    schema = tenant.schema_name
    try:
        counter = rate_counter(request, READ_DIMENSION)
        client_counter = rate_counter(request, CLIENT_READ_DIMENSION)
        look_up = cache_seconds() > 0 and is_cacheable_request(request)
        # the busiest-tenants refresh rides on the regular metering round trip
        meter = not metrics.tenant_labels.refresh_due()
        meter_keys, meter_args = _metering(request, tenant, seconds_so_far, meter)
        token = new_token()
        keys_and_args = {
            "keys": [
                slots_key(schema),
                counter.key if counter else UNUSED_KEY,
                client_counter.key if client_counter else UNUSED_KEY,
                generation_key(schema),
                entry_key(schema, request),
                *meter_keys,
                pace_key(schema),
            ],
            "args": [
                tenant.plan.concurrent_requests,
                lease_ms(),
                token,
                counter.expiry_seconds if counter else 0,
                counter.limit if counter else "",
                client_counter.expiry_seconds if client_counter else 0,
                client_counter.limit if client_counter else "",
                "1" if look_up else "0",
                "1" if meter else "0",
                *meter_args,
                *pace_arguments(counter.limit if counter else None),
            ],
        }
        try:
            reply = script(_DECIDE)(**keys_and_args)
        except RedisTimeoutError:
            # One more try, at once, after a reply that came late (a busy machine
            # delays Redis a few hundred ms): without it the request falls through to
            # Django, which needs the database - a 503 for a cached page while the
            # database is out. A hung Redis costs this request a second timeout and
            # then opens the breaker (two failures in a row), so later requests fail
            # at once; an open breaker raises no timeout and is not retried. The slot
            # is keyed by the token, so a first attempt that did run holds no second
            # slot; it may have counted the read once more.
            reply = script(_DECIDE)(**keys_and_args)
    except Exception as exc:  # noqa: BLE001 - the regular path applies the policy
        logger.warning("public page decision unavailable: %s", exc)
        return None
    outcome = Outcome(int(reply[0]))
    return PageDecision(
        outcome=outcome,
        schema_name=schema,
        token=token,
        rate=None
        if outcome is Outcome.REFUSED
        else _rate_decision(counter, int(reply[1]), client_counter, int(reply[2])),
        looked_up=look_up,
        metered=meter and outcome is not Outcome.RENDER,
        generation=int(reply[3]) if len(reply) > 3 and reply[3] else None,
        entry=pickle.loads(reply[4]) if outcome is Outcome.HIT else None,
        beyond_pace=outcome is Outcome.RENDER and int(reply[4]) == 1,
        counted=()
        if outcome is Outcome.REFUSED
        else tuple(
            (each, int(count))
            for each, count in ((counter, reply[1]), (client_counter, reply[2]))
            if each is not None
        ),
    )


def _rate_decision(
    counter: RateCounter | None,
    count: int,
    client_counter: RateCounter | None,
    client_count: int,
) -> LimitDecision | None:
    """The client's decision when it refused the request, else the tenant's."""
    if client_counter is not None:
        client = client_counter.decision(client_count)
        if client.limited or counter is None:
            return client
    return counter.decision(count) if counter is not None else None


def apply_decision(request: HttpRequest, decision: PageDecision) -> HttpResponse | None:
    """Act on the decision: refuse (503, 429), answer a cache hit, or None to let
    the view render (its slot released in the metering round trip)."""
    state = request_state(request)
    if decision.outcome is Outcome.REFUSED:
        state.metered = decision.metered  # counted by the script
        return busy_response(request)
    state.admitted = True
    state.rate = decision.rate
    if decision.outcome is Outcome.LIMITED:
        state.metered = decision.metered
        return limited_response(request, decision.rate)
    if decision.outcome is Outcome.RENDER:
        defer_to_metering(request, decision.release)
        return None
    state.metered = decision.metered  # counted by the script
    response = decision.entry.response()
    for name, value in hit_headers(decision):
        response[name] = value
    return response


def take_hit(request: HttpRequest, decision: PageDecision) -> None:
    """What answering a hit records in the request's state (``apply_decision`` for
    a hit, without building a response: the WSGI edge builds its own)."""
    state = request_state(request)
    state.admitted = True
    state.rate = decision.rate
    state.metered = decision.metered  # counted by the script


# The headers a cached page gets on top of the stored ones: ``Vary: Cookie``
# (signed-in editors get other content: downstream caches must know; a stored page
# keeps no Vary of its own) and the cache status.
HIT_HEADERS = (("Vary", "Cookie"), (STATUS_HEADER, "hit"))


def rate_headers(rate: LimitDecision | None) -> list[tuple[str, str]]:
    return [] if rate is None else list(rate.headers().items())


def hit_headers(decision: PageDecision) -> list[tuple[str, str]]:
    """``HIT_HEADERS`` and the rate-limit headers."""
    return [*HIT_HEADERS, *rate_headers(decision.rate)]
