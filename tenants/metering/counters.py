"""Counting a tenant's use as it happens: one Redis round trip per request.

A finished request adds, in one command (``METER_LUA``'s ``meter``): an ``HINCRBY``
on its tenant's day counter, the short traffic window (requests, rejections and a
latency histogram in 10-second buckets, used by ``top`` and by the metrics' top-K
tenant labels) and, every ``CMS_METRICS_LABEL_REFRESH_SECONDS``, the read of the
current top-K list. The public page decision (tenants.request_path.decision) runs the
same ``meter`` function for a cached page it answers and for a request it refuses
(with ``meter_rejection``). A Redis failure loses that request's counts and is
logged; it never fails the request.

The counters wait in a live hash until ``tenants.metering.flush`` moves them into
``UsageDay`` rows; ``tenants.metering.reports`` reads both.
"""

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from django.http import HttpRequest
from redis.exceptions import NoScriptError

from tenants.errors import TenantError
from tenants.redis_store.keys import env_prefix, platform_key, state_redis
from tenants.redis_store.scripts import compose, script
from tenants.request_state import request_state

logger = logging.getLogger(__name__)

COUNTERS = (
    "public_reads",
    "api_reads",
    "api_writes",
    "publish_jobs",
    "rejected_429",
    "rejected_503",
)
SNAPSHOTS = ("storage_bytes", "pages", "users")
WINDOW_BUCKET_SECONDS = 10
WINDOW_BUCKETS = 6  # ``top`` and the metrics labels look at the last minute
# Upper edges (ms) of the latency histogram kept for ``top``'s p95.
LATENCY_EDGES_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
_UNMETERED_PREFIXES = ("/admin/", "/static/", "/media/", "/documents/", "/metrics")


class UsageError(TenantError):
    """Bad input to a usage report; the message says what to fix."""


def live_key() -> str:
    return platform_key("usage", "live")


def batches_key() -> str:
    return platform_key("usage", "batches")


def window_key(kind: str, bucket: int, *parts: str) -> str:
    """A key of the traffic window: ``req`` (requests per tenant), ``429``/``503``
    (rejections per tenant), ``lat`` (a tenant's latency histogram)."""
    return platform_key("usage", "win", kind, bucket, *parts)


def window_bucket(now: float | None = None) -> int:
    return int(time.time() if now is None else now) // WINDOW_BUCKET_SECONDS


def window_keys(kind: str, bucket: int) -> list[str]:
    """The last minute's keys of one kind."""
    return [window_key(kind, bucket - age) for age in range(WINDOW_BUCKETS)]


def counter_for(*, method: str, path: str, status: int) -> str | None:
    """Which daily counter a tenant's request adds to (None: not metered)."""
    if status == 429:
        return "rejected_429"
    if status == 503:
        return "rejected_503"
    if path.startswith(_UNMETERED_PREFIXES):
        return None
    if path.startswith("/api/"):
        return "api_reads" if method in ("GET", "HEAD", "OPTIONS") else "api_writes"
    return "public_reads"


def latency_bucket(seconds: float) -> int:
    ms = seconds * 1000
    for index, edge in enumerate(LATENCY_EDGES_MS):
        if ms <= edge:
            return index
    return len(LATENCY_EDGES_MS)


def counter_field(schema: str, day: dt.date, counter: str) -> str:
    """A field of the live hash: ``<schema>|<YYYY-MM-DD>|<counter>``."""
    return f"{schema}|{day.isoformat()}|{counter}"


def parse_counter_fields(raw: dict) -> dict[tuple[str, dt.date], dict[str, int]]:
    """Live-hash fields and values -> counts per (schema, day)."""
    rows: dict[tuple[str, dt.date], dict[str, int]] = {}
    for field, value in raw.items():
        try:
            schema, day, counter = text(field).split("|")
            key = (schema, dt.date.fromisoformat(day))
        except ValueError:
            logger.error("ignoring malformed usage counter %r", field)
            continue
        if counter in COUNTERS:
            rows.setdefault(key, dict.fromkeys(COUNTERS, 0))[counter] += int(value)
    return rows


# Counting one finished request: a day counter field ('' for none), the traffic
# window, the latency histogram; a refused one (429, 503) also in the traffic window
# of its status.
# ``meter_by`` counts ``n`` such requests at once (the batches of pages a worker
# answered from memory, tenants.request_path.local_hits).
METER_LUA = """
local function meter_by(day, field, window, latency, bucket, schema, expiry, n)
  if field ~= '' then redis.call('HINCRBY', day, field, n) end
  redis.call('ZINCRBY', window, n, schema)
  redis.call('EXPIRE', window, expiry)
  redis.call('HINCRBY', latency, bucket, n)
  redis.call('EXPIRE', latency, expiry)
end
local function meter(day, field, window, latency, bucket, schema, expiry)
  meter_by(day, field, window, latency, bucket, schema, expiry, 1)
end
local function meter_rejection(rejections, schema, expiry)
  redis.call('ZINCRBY', rejections, 1, schema)
  redis.call('EXPIRE', rejections, expiry)
end
"""
# KEYS: day, window, latency, rejection window ('-': none)
# ARGV: field, schema, bucket, expiry
_METER = compose(
    METER_LUA,
    body="""
local expiry = tonumber(ARGV[4])
meter(KEYS[1], ARGV[1], KEYS[2], KEYS[3], ARGV[3], ARGV[2], expiry)
if KEYS[4] ~= '-' then meter_rejection(KEYS[4], ARGV[2], expiry) end
return 1
""",
)


# Counts a process holds back to send in batches (tenants.request_path.local_hits
# registers its flush): sent before the live counters are moved to UsageDay.
_held_counts: list[Callable[[], None]] = []


def holds_counts(flush: Callable[[], None]) -> None:
    """Register ``flush``, which sends the counts a process holds back to Redis."""
    if flush not in _held_counts:
        _held_counts.append(flush)


def send_held_counts() -> None:
    """Send this process's held-back counts now (``flush_usage`` does, first)."""
    for flush in _held_counts:
        flush()


def defer_to_metering(request: HttpRequest, queue: Callable[[object], None]) -> None:
    """Redis work that can wait until the response is out (releasing a concurrency
    slot, giving back a count) rides on the request's metering round trip:
    ``queue(pipe)`` adds its commands to that pipeline."""
    request_state(request).deferred.append(queue)


def run_deferred(request: HttpRequest) -> None:
    """The deferred work on its own, when the metering round trip did not happen."""
    state = request_state(request)
    deferred, state.deferred = state.deferred, []
    if deferred:
        pipe = state_redis().pipeline(transaction=False)
        for queue in deferred:
            queue(pipe)
        pipe.execute()


@dataclass(frozen=True)
class RequestCounts:
    """Where one finished request is counted: its day's counter (if metered), the
    traffic window and the latency histogram of ``top``; the arguments of
    ``METER_LUA``'s ``meter``."""

    live_key: str
    live_field: str | None
    requests_key: str
    latency_key: str
    latency_bucket: int
    ttl: int


def request_counts(
    *, schema: str, request: HttpRequest, status: int, seconds: float
) -> RequestCounts:
    return counts_of(
        schema=schema,
        method=request.method,
        path=request.path,
        status=status,
        seconds=seconds,
    )


def counts_of(
    *, schema: str, method: str, path: str, status: int, seconds: float
) -> RequestCounts:
    """``request_counts`` of a request known by its method and path (a page answered
    from a worker's memory has no request object)."""
    named = _bucket_keys(schema, window_bucket())
    counter = counter_for(method=method, path=path, status=status)
    return RequestCounts(
        live_key=named.live,
        live_field=None
        if counter is None
        else counter_field(schema, named.day, counter),
        requests_key=named.requests,
        latency_key=named.latency,
        latency_bucket=latency_bucket(seconds),
        ttl=WINDOW_BUCKET_SECONDS * (WINDOW_BUCKETS + 2),
    )


def rejection_counts(
    *, schema: str, request: HttpRequest, status: int
) -> tuple[str, str]:
    """Where a refusal (``status`` 429 or 503) is counted besides the traffic window
    and latency of ``request_counts``: its day counter field and the traffic window
    of its status (``METER_LUA``'s ``meter_rejection``)."""
    named = _bucket_keys(schema, window_bucket())
    counter = counter_for(method=request.method, path=request.path, status=status)
    return counter_field(schema, named.day, counter), named.rejections[status]


class _BucketKeys(NamedTuple):
    live: str
    requests: str
    latency: str
    day: dt.date
    rejections: dict[int, str]  # status -> its traffic window


def _bucket_keys(schema: str, bucket: int) -> _BucketKeys:
    """The keys a request of that tenant and 10 seconds counts on: named once per
    bucket, not per request. A bucket never spans midnight (a day is a whole number
    of buckets)."""
    return _named_bucket_keys(env_prefix(), schema, bucket)


@functools.lru_cache(maxsize=10_000)
def _named_bucket_keys(prefix: str, schema: str, bucket: int) -> _BucketKeys:
    # ``prefix`` is only part of the cache key: the key helpers read it themselves
    return _BucketKeys(
        live=live_key(),
        requests=window_key("req", bucket),
        latency=window_key("lat", bucket, schema),
        day=dt.datetime.fromtimestamp(bucket * WINDOW_BUCKET_SECONDS, dt.UTC).date(),
        rejections={status: window_key(str(status), bucket) for status in (429, 503)},
    )


def record_request(
    *,
    schema: str,
    request: HttpRequest,
    status: int,
    seconds: float,
    refresh_labels: int = 0,
) -> list[str] | None:
    """Count a finished request of tenant ``schema`` in one pipelined round trip,
    along with the request's deferred Redis work (``defer_to_metering``).

    With ``refresh_labels`` > 0 the same round trip returns the busiest tenants of
    the last minute (at most that many), for the metrics' tenant labels."""
    counts = request_counts(
        schema=schema, request=request, status=status, seconds=seconds
    )
    rejected = window_key(str(status), window_bucket())
    keys = [counts.live_key, counts.requests_key, counts.latency_key]
    keys.append(rejected if status in (429, 503) else "-")
    args = [counts.live_field or "", schema, counts.latency_bucket, counts.ttl]
    meter = script(_METER)
    state = request_state(request)
    pipe = state_redis().pipeline(transaction=False)
    pipe.evalsha(meter.sha, len(keys), *keys, *args)
    for queue in state.deferred:
        queue(pipe)
    if refresh_labels:
        _add_busiest(pipe, refresh_labels)
    results = pipe.execute(raise_on_error=False)
    if isinstance(results[0], NoScriptError):  # Redis restarted or flushed its scripts
        meter(keys=keys, args=args)
    failures = [result for result in results[1:] if isinstance(result, Exception)]
    if isinstance(results[0], Exception) and not isinstance(results[0], NoScriptError):
        failures.insert(0, results[0])
    if failures:
        raise failures[0]
    state.deferred = []
    if refresh_labels:
        return [text(member) for member in results[-1]]
    return None


def record_publish_job(*, schema: str, refresh_labels: int = 0) -> list[str] | None:
    """A background publish job ran (called in the Celery worker); like
    ``record_request``, optionally returns the busiest tenants in the same trip."""
    today = dt.datetime.now(dt.UTC).date()
    pipe = state_redis().pipeline(transaction=False)
    pipe.hincrby(live_key(), counter_field(schema, today, "publish_jobs"), 1)
    if refresh_labels:
        _add_busiest(pipe, refresh_labels)
    results = pipe.execute()
    return [text(m) for m in results[-1]] if refresh_labels else None


def _add_busiest(pipe, count: int) -> None:
    """Queue the read of the ``count`` busiest tenants of the last minute."""
    busiest = platform_key("usage", "win", "busiest")
    pipe.zunionstore(busiest, window_keys("req", window_bucket()))
    pipe.expire(busiest, WINDOW_BUCKET_SECONDS * (WINDOW_BUCKETS + 2))
    pipe.zrevrange(busiest, 0, count - 1)


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
