"""Moving the live usage counters into ``UsageDay`` rows, exactly once.

Flush (``flush_usage``, a Celery beat task): the live hash is renamed to a batch key
atomically, so new counts go to a fresh hash while the batch is added to
``UsageDay`` rows (``INSERT ... ON CONFLICT DO UPDATE SET x = x + excluded.x``) in
one transaction that also records the batch's name. The batch key is deleted only
after that commit. A worker killed anywhere in between leaves the batch key behind:
the next flush applies leftover batches first, and skips (and deletes) a batch whose
name is already recorded, so no count is lost and none is added twice.
"""

import datetime as dt
import uuid
from dataclasses import dataclass

from django.db import connection, transaction

from tenants.metering.counters import (
    COUNTERS,
    SNAPSHOTS,
    batches_key,
    live_key,
    parse_counter_fields,
    send_held_counts,
    text,
)
from tenants.models import Tenant, UsageFlush
from tenants.redis_store.keys import platform_key, state_redis
from tenants.tariffs.quotas import stored_snapshot

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


def _upsert(rows: dict[tuple[str, dt.date], dict[str, int]]) -> int:
    tenants = {
        t.schema_name: t
        for t in Tenant.objects.filter(schema_name__in={s for s, _ in rows})
    }
    snapshots = {schema: stored_snapshot(tenant) for schema, tenant in tenants.items()}
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
    client = state_redis()
    raw = client.hgetall(batch)
    rows = parse_counter_fields(raw)
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
    pipe = state_redis().pipeline(transaction=True)
    pipe.delete(batch)
    pipe.srem(batches_key(), batch)
    pipe.execute()


def flush_usage() -> FlushResult:
    """Move the live counters into UsageDay; leftovers of an interrupted flush first.
    Counts this process holds back (pages answered from memory) are sent first."""
    send_held_counts()
    client = state_redis()
    leftovers = sorted(text(b) for b in client.smembers(batches_key()))
    batch = platform_key("usage", "batch", uuid.uuid4().hex)
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
