"""Usage metering per tenant and day, for tariff billing, the usage views and
``manage.py tenants usage`` / ``top``.

Hot path: a request adds one pipelined round trip to Redis after its response
(``record_request``): an ``HINCRBY`` on the day's counter, the short traffic window
(requests, rejections and a latency histogram in 10-second buckets, used by ``top``
and by the metrics' top-K tenant labels) and, every
``CMS_METRICS_LABEL_REFRESH_SECONDS``, the read of the current top-K list. A Redis
failure loses that request's counts and is logged; it never fails the request.

Flush (``flush_usage``, a Celery beat task): the live hash is renamed to a batch key
atomically, so new counts go to a fresh hash while the batch is added to
``UsageDay`` rows (``INSERT ... ON CONFLICT DO UPDATE SET x = x + excluded.x``) in
one transaction that also records the batch's name. The batch key is deleted only
after that commit. A worker killed anywhere in between leaves the batch key behind:
the next flush applies leftover batches first, and skips (and deletes) a batch whose
name is already recorded, so no count is lost and none is added twice.
"""

import datetime as dt
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest
from redis.exceptions import NoScriptError

from tenants.errors import TenantError
from tenants.models import Tenant, UsageDay, UsageFlush
from tenants.redis_store.scripts import script

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


def _redis():
    from django_redis import get_redis_connection

    return get_redis_connection("ratelimit")


def key_prefix() -> str:
    """``cms:usage:`` plus the cache key prefix, so test runs and a development
    server sharing a Redis never mix their counters."""
    prefix = settings.CACHES["default"].get("KEY_PREFIX") or ""
    return f"cms:usage:{prefix}:" if prefix else "cms:usage:"


def live_key() -> str:
    return f"{key_prefix()}live"


def batches_key() -> str:
    return f"{key_prefix()}batches"


def window_bucket(now: float | None = None) -> int:
    return int(time.time() if now is None else now) // WINDOW_BUCKET_SECONDS


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


# Counting a finished request, in Lua so that it is one command; content.hot_path runs
# the same lines for the cached pages it answers. Locals: day (hash of day counters),
# field (its field, '' for none), window (traffic window), latency (histogram),
# bucket (histogram bucket), schema, expiry (seconds).
METER_LUA = """
if field ~= '' then redis.call('HINCRBY', day, field, 1) end
redis.call('ZINCRBY', window, 1, schema)
redis.call('EXPIRE', window, expiry)
redis.call('HINCRBY', latency, bucket, 1)
redis.call('EXPIRE', latency, expiry)
"""
_METER = (
    """
local day, window, latency = KEYS[1], KEYS[2], KEYS[3]
local field, schema, bucket, expiry = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
"""
    + METER_LUA
    + """
if KEYS[4] ~= '-' then
  redis.call('ZINCRBY', KEYS[4], 1, schema)
  redis.call('EXPIRE', KEYS[4], expiry)
end
return 1
"""
)
_METER_SHA = hashlib.sha1(_METER.encode()).hexdigest()


def defer_to_metering(request: HttpRequest, queue: Callable[[object], None]) -> None:
    """Redis work that can wait until the response is out (releasing a concurrency
    slot, giving back a count) rides on the request's metering round trip:
    ``queue(pipe)`` adds its commands to that pipeline."""
    request.__dict__.setdefault("cms_deferred_redis", []).append(queue)


def run_deferred(request: HttpRequest) -> None:
    """The deferred work on its own, when the metering round trip did not happen."""
    deferred = request.__dict__.pop("cms_deferred_redis", [])
    if deferred:
        pipe = _redis().pipeline(transaction=False)
        for queue in deferred:
            queue(pipe)
        pipe.execute()


@dataclass(frozen=True)
class RequestCounts:
    """Where one finished request is counted: its day's counter (if metered), the
    traffic window and the latency histogram of ``top``."""

    live_key: str
    live_field: str | None
    requests_key: str
    latency_key: str
    latency_bucket: int
    ttl: int


def request_counts(
    *, schema: str, request: HttpRequest, status: int, seconds: float
) -> RequestCounts:
    prefix = key_prefix()
    today = dt.datetime.now(dt.UTC).date().isoformat()
    bucket = window_bucket()
    counter = counter_for(method=request.method, path=request.path, status=status)
    return RequestCounts(
        live_key=live_key(),
        live_field=None if counter is None else f"{schema}|{today}|{counter}",
        requests_key=f"{prefix}win:req:{bucket}",
        latency_key=f"{prefix}win:lat:{bucket}:{schema}",
        latency_bucket=latency_bucket(seconds),
        ttl=WINDOW_BUCKET_SECONDS * (WINDOW_BUCKETS + 2),
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
    rejected = f"{key_prefix()}win:{status}:{window_bucket()}"
    keys = [counts.live_key, counts.requests_key, counts.latency_key]
    keys.append(rejected if status in (429, 503) else "-")
    args = [counts.live_field or "", schema, counts.latency_bucket, counts.ttl]
    pipe = _redis().pipeline(transaction=False)
    pipe.evalsha(_METER_SHA, len(keys), *keys, *args)
    for queue in request.__dict__.get("cms_deferred_redis", ()):
        queue(pipe)
    if refresh_labels:
        _add_busiest(pipe, refresh_labels)
    results = pipe.execute(raise_on_error=False)
    if isinstance(results[0], NoScriptError):  # Redis restarted or flushed its scripts
        script(_METER)(keys=keys, args=args)
    failures = [result for result in results[1:] if isinstance(result, Exception)]
    if isinstance(results[0], Exception) and not isinstance(results[0], NoScriptError):
        failures.insert(0, results[0])
    if failures:
        raise failures[0]
    request.__dict__.pop("cms_deferred_redis", None)
    if refresh_labels:
        return [_text(member) for member in results[-1]]
    return None


def record_publish_job(*, schema: str, refresh_labels: int = 0) -> list[str] | None:
    """A background publish job ran (called in the Celery worker); like
    ``record_request``, optionally returns the busiest tenants in the same trip."""
    today = dt.datetime.now(dt.UTC).date().isoformat()
    pipe = _redis().pipeline(transaction=False)
    pipe.hincrby(live_key(), f"{schema}|{today}|publish_jobs", 1)
    if refresh_labels:
        _add_busiest(pipe, refresh_labels)
    results = pipe.execute()
    return [_text(m) for m in results[-1]] if refresh_labels else None


def _add_busiest(pipe, count: int) -> None:
    """Queue the read of the ``count`` busiest tenants of the last minute."""
    busiest = f"{key_prefix()}win:busiest"
    pipe.zunionstore(busiest, _window_keys("req", window_bucket()))
    pipe.expire(busiest, WINDOW_BUCKET_SECONDS * (WINDOW_BUCKETS + 2))
    pipe.zrevrange(busiest, 0, count - 1)


def _window_keys(kind: str, bucket: int) -> list[str]:
    prefix = key_prefix()
    return [f"{prefix}win:{kind}:{bucket - age}" for age in range(WINDOW_BUCKETS)]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# --- flush ----------------------------------------------------------------------------

_TAKE_BATCH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('SADD', KEYS[3], KEYS[2])
return 1
"""


@dataclass(frozen=True)
class FlushResult:
    batches: int
    counts: int
    tenants: int


def _parse_batch(raw: dict) -> dict[tuple[str, dt.date], dict[str, int]]:
    rows: dict[tuple[str, dt.date], dict[str, int]] = {}
    for field, value in raw.items():
        try:
            schema, day, counter = _text(field).split("|")
            key = (schema, dt.date.fromisoformat(day))
        except ValueError:
            logger.error("ignoring malformed usage counter %r", field)
            continue
        if counter in COUNTERS:
            rows.setdefault(key, dict.fromkeys(COUNTERS, 0))[counter] += int(value)
    return rows


def _snapshot(tenant: Tenant) -> dict[str, int]:
    """Storage, pages and users as the tenant's quotas count them."""
    from django_tenants.utils import schema_context

    from tenants.tariffs import quotas

    with schema_context(tenant.schema_name):
        return {
            "storage_bytes": quotas.storage_bytes(),
            "pages": quotas.page_count(),
            "users": quotas.user_count(),
        }


def _upsert(rows: dict[tuple[str, dt.date], dict[str, int]]) -> int:
    tenants = {
        t.schema_name: t
        for t in Tenant.objects.filter(schema_name__in={s for s, _ in rows})
    }
    snapshots = {schema: _snapshot(tenant) for schema, tenant in tenants.items()}
    columns = [*COUNTERS, *SNAPSHOTS]
    assignments = ", ".join(
        [f"{c} = tenants_usageday.{c} + excluded.{c}" for c in COUNTERS]
        + [f"{c} = excluded.{c}" for c in SNAPSHOTS]
        + ["updated_at = excluded.updated_at"]
    )
    sql = (
        f"INSERT INTO public.tenants_usageday (tenant_id, day, {', '.join(columns)}, "
        f"updated_at) VALUES (%s, %s, {', '.join(['%s'] * len(columns))}, now()) "
        f"ON CONFLICT (tenant_id, day) DO UPDATE SET {assignments}"
    )
    written = 0
    with connection.cursor() as cursor:
        for (schema, day), counts in sorted(rows.items()):
            tenant = tenants.get(schema)
            if tenant is None:  # deleted since: its counts go with it
                continue
            snapshot = snapshots[schema]
            cursor.execute(
                sql,
                [
                    tenant.pk,
                    day,
                    *[counts[c] for c in COUNTERS],
                    *[snapshot[c] for c in SNAPSHOTS],
                ],
            )
            written += 1
    return written


def _apply_batch(batch: str) -> tuple[int, int]:
    """Add one batch to UsageDay (exactly once); returns (counts, rows)."""
    client = _redis()
    raw = client.hgetall(batch)
    rows = _parse_batch(raw)
    total = sum(sum(c.values()) for c in rows.values())
    written = 0
    connection.set_schema_to_public()
    with transaction.atomic():
        _, created = UsageFlush.objects.get_or_create(batch=batch)
        if created:
            written = _upsert(rows)
        else:
            total = 0  # applied before; the worker died before deleting the key
    connection.set_schema_to_public()
    _forget_batch(batch)
    return total, written


def _forget_batch(batch: str) -> None:
    """Only after the batch's transaction committed."""
    pipe = _redis().pipeline(transaction=True)
    pipe.delete(batch)
    pipe.srem(batches_key(), batch)
    pipe.execute()


def flush_usage() -> FlushResult:
    """Move the live counters into UsageDay; leftovers of an interrupted flush first."""
    client = _redis()
    leftovers = sorted(_text(b) for b in client.smembers(batches_key()))
    batch = f"{key_prefix()}batch:{uuid.uuid4().hex}"
    taken = client.eval(_TAKE_BATCH, 3, live_key(), batch, batches_key())
    batches = leftovers + ([batch] if taken else [])
    counts = tenants = 0
    for name in batches:
        added, written = _apply_batch(name)
        counts += added
        tenants += written
    UsageFlush.objects.filter(
        flushed_at__lt=dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
    ).delete()
    return FlushResult(batches=len(batches), counts=counts, tenants=tenants)


# --- reports --------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageRow:
    day: dt.date
    counts: dict[str, int]


def parse_day(value: str, *, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{option} must be a date as YYYY-MM-DD, not {value!r}."
        ) from None


def usage_days(*, tenant: Tenant, start: dt.date, end: dt.date) -> list[UsageRow]:
    """One row per day from ``start`` to ``end`` inclusive (zeros where nothing was
    recorded), including counts not flushed yet."""
    if end < start:
        raise UsageError(f"--from ({start}) is after --to ({end}).")
    if (end - start).days > 3660:
        raise UsageError("Ask for at most ten years at a time.")
    fields = [*COUNTERS, *SNAPSHOTS]
    stored = {
        row["day"]: row
        for row in UsageDay.objects.filter(
            tenant=tenant, day__gte=start, day__lte=end
        ).values("day", *fields)
    }
    pending = pending_counts(schema=tenant.schema_name)
    rows = []
    day = start
    while day <= end:
        counts = {f: int(stored.get(day, {}).get(f, 0)) for f in fields}
        for counter, value in pending.get(day, {}).items():
            counts[counter] += value
        rows.append(UsageRow(day=day, counts=counts))
        day += dt.timedelta(days=1)
    return rows


def pending_counts(*, schema: str) -> dict[dt.date, dict[str, int]]:
    """Counts in Redis that the next flush will add (live hash and leftover batches).

    Reads the whole live hash (HSCAN with a match): for reports, not the hot path."""
    client = _redis()
    names = [live_key(), *(_text(b) for b in client.smembers(batches_key()))]
    raw: dict[str, int] = {}
    for name in names:
        for field, value in client.hscan_iter(name, match=f"{schema}|*", count=1000):
            field = _text(field)
            raw[field] = raw.get(field, 0) + int(value)
    return {day: counts for (_, day), counts in _parse_batch(raw).items()}


def period_bounds(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The billing period: the current calendar month (UTC) up to today."""
    today = today or dt.datetime.now(dt.UTC).date()
    return today.replace(day=1), today


def period_totals(rows: Iterable[UsageRow]) -> dict[str, int]:
    """Counters add up over the period; snapshots are the latest day's."""
    rows = list(rows)
    totals = dict.fromkeys(COUNTERS, 0)
    for row in rows:
        for counter in COUNTERS:
            totals[counter] += row.counts[counter]
    latest = next(
        (row for row in reversed(rows) if any(row.counts[s] for s in SNAPSHOTS)),
        None,
    )
    for snapshot in SNAPSHOTS:
        totals[snapshot] = latest.counts[snapshot] if latest else 0
    return totals


# --- top ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopRow:
    schema: str
    requests_per_second: float
    requests: int
    rejected_429: int
    rejected_503: int
    p95_ms: int | None
    in_flight: int


def _p95(histogram: dict[int, int]) -> int | None:
    total = sum(histogram.values())
    if not total:
        return None
    needed = 0.95 * total
    seen = 0
    for index in range(len(LATENCY_EDGES_MS) + 1):
        seen += histogram.get(index, 0)
        if seen >= needed:
            if index < len(LATENCY_EDGES_MS):
                return LATENCY_EDGES_MS[index]
            return LATENCY_EDGES_MS[-1] * 2
    return None


def top_tenants(*, limit: int = 20, now: float | None = None) -> list[TopRow]:
    """The busiest tenants of the last minute, from the traffic window."""
    if limit < 1:
        raise UsageError("--limit must be at least 1.")
    client = _redis()
    bucket = window_bucket(now)
    prefix = key_prefix()
    scratch = f"{prefix}win:top:{uuid.uuid4().hex}"
    pipe = client.pipeline(transaction=False)
    for kind in ("req", "429", "503"):
        pipe.zunionstore(f"{scratch}:{kind}", _window_keys(kind, bucket))
    pipe.zrevrange(f"{scratch}:req", 0, limit - 1, withscores=True)
    busiest = pipe.execute()[-1]
    schemas = [_text(member) for member, _ in busiest]
    pipe = client.pipeline(transaction=False)
    for schema in schemas:
        pipe.zscore(f"{scratch}:429", schema)
        pipe.zscore(f"{scratch}:503", schema)
        for age in range(WINDOW_BUCKETS):
            pipe.hgetall(f"{prefix}win:lat:{bucket - age}:{schema}")
        pipe.zcard(f"cms:inflight:{schema}")
    pipe.delete(*(f"{scratch}:{kind}" for kind in ("req", "429", "503")))
    results = pipe.execute()
    per_tenant = 3 + WINDOW_BUCKETS
    window = WINDOW_BUCKETS * WINDOW_BUCKET_SECONDS
    rows = []
    for index, (schema, score) in enumerate(
        (s, score) for s, (_, score) in zip(schemas, busiest, strict=True)
    ):
        chunk = results[index * per_tenant : (index + 1) * per_tenant]
        histogram: dict[int, int] = {}
        for part in chunk[2 : 2 + WINDOW_BUCKETS]:
            for edge, count in part.items():
                histogram[int(edge)] = histogram.get(int(edge), 0) + int(count)
        rows.append(
            TopRow(
                schema=schema,
                requests=int(score),
                requests_per_second=round(score / window, 2),
                rejected_429=int(chunk[0] or 0),
                rejected_503=int(chunk[1] or 0),
                p95_ms=_p95(histogram),
                in_flight=int(chunk[-1]),
            )
        )
    return rows


# --- views ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LimitLine:
    """One line of "usage against the plan": what was used and what the plan says."""

    label: str
    used: int
    limit: str
    share: int | None  # percent of a quota, for quotas only


def usage_against_plan(
    *, tenant: Tenant, totals: dict[str, int], current: dict[str, int]
) -> list[LimitLine]:
    """This period's counters next to the plan's rates, and current storage, pages
    and users against the plan's quotas."""
    plan = tenant.plan

    def quota(label: str, used: int, limit: int, unit: str = "") -> LimitLine:
        share = round(100 * used / limit) if limit else None
        return LimitLine(label, used, f"{limit:,}{unit}", share)

    return [
        LimitLine(
            "Public page reads",
            totals["public_reads"],
            f"{plan.public_reads_per_minute:,} / minute",
            None,
        ),
        LimitLine(
            "API reads",
            totals["api_reads"],
            f"{plan.api_reads_per_minute:,} / minute",
            None,
        ),
        LimitLine(
            "API writes",
            totals["api_writes"],
            f"{plan.api_writes_per_minute:,} / minute",
            None,
        ),
        LimitLine(
            "Publish jobs",
            totals["publish_jobs"],
            f"{plan.publish_jobs_per_hour:,} / hour",
            None,
        ),
        LimitLine(
            "Refused: over the rate limit (429)", totals["rejected_429"], "—", None
        ),
        LimitLine(
            "Refused: too many at once (503)",
            totals["rejected_503"],
            f"{plan.concurrent_requests:,} concurrent",
            None,
        ),
        quota(
            "Storage (MB)",
            round(current["storage_bytes"] / (1024 * 1024)),
            plan.storage_mb,
            " MB",
        ),
        quota("Pages", current["pages"], plan.max_pages),
        quota("Users", current["users"], plan.max_users),
    ]


def current_snapshot(tenant: Tenant) -> dict[str, int]:
    """Storage, pages and users right now (queries in the tenant's schema)."""
    return _snapshot(tenant)


def all_tenants_usage(*, start: dt.date, end: dt.date) -> list[dict]:
    """Every tenant's totals for the period (flushed rows plus pending counts): one
    aggregate query, one snapshot query and one read of the live counters."""
    from django.db.models import Sum

    tenants = list(
        Tenant.objects.exclude(status=Tenant.Status.TEMPLATE).select_related("plan")
    )
    sums = {
        row["tenant_id"]: row
        for row in UsageDay.objects.filter(day__gte=start, day__lte=end)
        .values("tenant_id")
        .annotate(**{c: Sum(c) for c in COUNTERS})
    }
    latest = {
        row["tenant_id"]: row
        for row in UsageDay.objects.filter(day__gte=start, day__lte=end)
        .order_by("tenant_id", "-day")
        .distinct("tenant_id")
        .values("tenant_id", *SNAPSHOTS)
    }
    pending = _all_pending(start=start, end=end)
    rows = []
    for tenant in tenants:
        row = {
            "slug": tenant.schema_name,
            "name": tenant.name,
            "plan": tenant.plan.name,
        }
        for counter in COUNTERS:
            row[counter] = int((sums.get(tenant.pk) or {}).get(counter) or 0)
            row[counter] += pending.get(tenant.schema_name, {}).get(counter, 0)
        for snapshot in SNAPSHOTS:
            row[snapshot] = int((latest.get(tenant.pk) or {}).get(snapshot) or 0)
        rows.append(row)
    return rows


def _all_pending(*, start: dt.date, end: dt.date) -> dict[str, dict[str, int]]:
    client = _redis()
    raw: dict[str, int] = {}
    for name in [live_key(), *(_text(b) for b in client.smembers(batches_key()))]:
        for field, value in client.hgetall(name).items():
            field = _text(field)
            raw[field] = raw.get(field, 0) + int(value)
    totals: dict[str, dict[str, int]] = {}
    for (schema, day), counts in _parse_batch(raw).items():
        if start <= day <= end:
            into = totals.setdefault(schema, dict.fromkeys(COUNTERS, 0))
            for counter, value in counts.items():
                into[counter] += value
    return totals
