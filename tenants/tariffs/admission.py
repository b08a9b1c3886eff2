"""Per-tenant concurrency caps across the whole worker pool.

At most ``plan.concurrent_requests`` requests of one tenant are in flight at once,
counted in Redis so the cap holds across processes and hosts. Over the cap a request
gets an immediate 503 with Retry-After instead of queueing behind busy workers, so one
tenant's burst cannot occupy the shared pool.

A slot is a member of a sorted set scored by its expiry time: released explicitly on
every path, and dropped by the next admission after its lease ends if the worker died
holding it. The rule is ``ADMISSION_LUA``: the stand-alone admission script and the
public page decision (tenants.request_path.decision) both run it.

The cap bounds how many requests a tenant holds at once, not how fast it renders: a
flood let through by the edge at a few times its plan still meets every render a
burst brings, all at once. So a page to render is also checked against the plan's
*pace* (``PACE_LUA``): its public reads per minute spread evenly, with a burst of
``CMS_BUSY_POOL_BURST_SECONDS`` of them. A render beyond that pace still runs while
the pool has a database slot free beyond the ``CMS_BUSY_POOL_FREE_SLOTS`` it leaves
to others - only that reserve of idle capacity is refused to it - but gives way when
the pool is busy
(tenants.request_path.edge): a 503 with Retry-After at once, instead of a worker's
time that quiet tenants' requests queue behind.
"""

import json
import uuid

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from tenants.redis_store.keys import state_redis, tenant_key
from tenants.redis_store.scripts import NOW_MS_LUA, compose, script
from tenants.request_path.negotiation import wants_json
from tenants.request_state import request_state
from tenants.tariffs.limits import refusal_page

# Needs NOW_MS_LUA. Check-and-take is atomic because it runs inside one script.
ADMISSION_LUA = """
local function slot_free(slots, cap, now)
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
  return redis.call('ZCARD', slots) < cap
end
local function take_slot(slots, token, lease, now)
  redis.call('ZADD', slots, now + lease, token)
  redis.call('PEXPIRE', slots, lease * 2)
end
"""

# Needs NOW_MS_LUA. A generic cell rate algorithm: ``pace`` holds the time (ms) at
# which the tenant's renders would be back on its plan's pace; a render is beyond the
# pace when that time is more than ``tolerance`` ms ahead. Only renders within the
# pace move it, so a flood's renders beyond it do not push the tenant further behind.
PACE_LUA = """
local function beyond_pace(pace, interval, tolerance, now)
  local due = tonumber(redis.call('GET', pace)) or now
  if due < now then due = now end
  if due - now > tolerance then return 1 end
  due = due + interval
  redis.call('SET', pace, tostring(due), 'PX', math.ceil(due - now) + 1000)
  return 0
end
"""

# KEYS: slots; ARGV: cap, lease ms, token
_ADMIT = compose(
    NOW_MS_LUA,
    ADMISSION_LUA,
    body="""
local now = now_ms()
if slot_free(KEYS[1], tonumber(ARGV[1]), now) then
  take_slot(KEYS[1], ARGV[3], tonumber(ARGV[2]), now)
  return 1
end
return 0
""",
)


def slots_key(schema_name: str) -> str:
    return tenant_key(schema_name, "inflight")


def pace_key(schema_name: str) -> str:
    return tenant_key(schema_name, "pace")


def pace_arguments(reads_per_minute: int | None) -> tuple[str, int]:
    """``beyond_pace``'s interval and tolerance (ms) for a plan's public reads per
    minute: ``''`` (no pace) for a plan without that limit or with the burst set
    to 0."""
    burst = float(getattr(settings, "CMS_BUSY_POOL_BURST_SECONDS", 1.0))
    if not reads_per_minute or burst <= 0:
        return "", 0
    return repr(60_000 / reads_per_minute), int(burst * 1000)


def slots_left_free() -> int:
    """How many database slots a render beyond its pace leaves free for the next
    requests: those of tenants within their pace, which wait for a slot (a backlog
    the slots do not show) instead of giving way."""
    return int(getattr(settings, "CMS_BUSY_POOL_FREE_SLOTS", 1))


def lease_ms() -> int:
    return int(getattr(settings, "CMS_CONCURRENCY_LEASE_SECONDS", 35) * 1000)


def new_token() -> str:
    return uuid.uuid4().hex


def acquire_slot(schema_name: str, cap: int) -> str | None:
    """Take one of the tenant's ``cap`` slots; return its token, or None when full."""
    token = new_token()
    admitted = script(_ADMIT)(
        keys=[slots_key(schema_name)], args=[cap, lease_ms(), token]
    )
    return token if admitted else None


def release_slot(schema_name: str, token: str) -> None:
    state_redis().zrem(slots_key(schema_name), token)


def queue_release(pipe, schema_name: str, token: str) -> None:
    """Add the release of a slot to a pipeline (the request's metering round trip)."""
    pipe.zrem(slots_key(schema_name), token)


def in_flight(schema_name: str) -> int:
    return state_redis().zcard(slots_key(schema_name))


def busy_response(
    request: HttpRequest, *, rejection: str = "concurrent_requests"
) -> HttpResponse:
    """503 with Retry-After 1, JSON for API clients, a short page for visitors:
    over the plan's concurrency cap, or (``rejection="busy_pool"``) a render beyond
    the plan's pace while the pool is busy."""
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
        body = refusal_page("tenants/busy.html", 1)
        response = HttpResponse(body, status=503)
    response["Retry-After"] = "1"
    request_state(request).rejection = rejection
    return response
