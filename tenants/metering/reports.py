"""Reading usage: per tenant and day (flushed rows plus pending counts), the busiest
tenants of the last minute (``top``), and usage against the plan for the Usage pages.
Not on the request path: these may scan."""

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from tenants.metering.counters import (
    COUNTERS,
    LATENCY_EDGES_MS,
    SNAPSHOTS,
    WINDOW_BUCKET_SECONDS,
    WINDOW_BUCKETS,
    UsageError,
    batches_key,
    live_key,
    parse_counter_fields,
    text,
    window_bucket,
    window_key,
    window_keys,
)
from tenants.models import Tenant, UsageDay
from tenants.redis_store.keys import platform_key, state_redis
from tenants.tariffs.admission import slots_key
from tenants.tariffs.quotas import stored_snapshot


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
    client = state_redis()
    names = [live_key(), *(text(b) for b in client.smembers(batches_key()))]
    raw: dict[str, int] = {}
    for name in names:
        for field, value in client.hscan_iter(name, match=f"{schema}|*", count=1000):
            field = text(field)
            raw[field] = raw.get(field, 0) + int(value)
    return {day: counts for (_, day), counts in parse_counter_fields(raw).items()}


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


@dataclass(frozen=True)
class TopRow:
    schema: str
    requests_per_second: float
    requests: int
    rejected_429: int
    rejected_503: int
    p95_ms: int | None
    in_flight: int


def p95(histogram: dict[int, int]) -> int | None:
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
    client = state_redis()
    bucket = window_bucket(now)
    scratch = platform_key("usage", "win", "top", uuid.uuid4().hex)
    pipe = client.pipeline(transaction=False)
    for kind in ("req", "429", "503"):
        pipe.zunionstore(f"{scratch}:{kind}", window_keys(kind, bucket))
    pipe.zrevrange(f"{scratch}:req", 0, limit - 1, withscores=True)
    busiest = pipe.execute()[-1]
    schemas = [text(member) for member, _ in busiest]
    pipe = client.pipeline(transaction=False)
    for schema in schemas:
        pipe.zscore(f"{scratch}:429", schema)
        pipe.zscore(f"{scratch}:503", schema)
        for age in range(WINDOW_BUCKETS):
            pipe.hgetall(window_key("lat", bucket - age, schema))
        pipe.zcard(slots_key(schema))
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
                p95_ms=p95(histogram),
                in_flight=int(chunk[-1]),
            )
        )
    return rows


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
    return stored_snapshot(tenant)


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
    client = state_redis()
    raw: dict[str, int] = {}
    for name in [live_key(), *(text(b) for b in client.smembers(batches_key()))]:
        for field, value in client.hgetall(name).items():
            field = text(field)
            raw[field] = raw.get(field, 0) + int(value)
    totals: dict[str, dict[str, int]] = {}
    for (schema, day), counts in parse_counter_fields(raw).items():
        if start <= day <= end:
            into = totals.setdefault(schema, dict.fromkeys(COUNTERS, 0))
            for counter, value in counts.items():
                into[counter] += value
    return totals
