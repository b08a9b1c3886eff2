"""Fair order for background work shared by every tenant.

Celery's queues are FIFO and its rate limits are per worker, so one tenant's 1,000
queued jobs would delay every other tenant's single job. Here Celery stays the
transport but no longer decides the order: a job's reference waits in its tenant's own
Redis list, tenants with pending work sit on a ring, and every Celery message is an
anonymous *token* that says "run the next job". The worker running a token takes the
next tenant in round-robin order, skips tenants at their in-flight cap, and takes that
tenant's oldest job. One token is sent per job, so the pool does exactly as much work
as plain FIFO Celery; only the order changes.

The order is round robin with newcomer priority, as fq_codel and DRR++ treat sparse
flows: a tenant that had nothing pending joins a list of newcomers served before the
ring of backlogged tenants, for its first job; with jobs left it then joins the back of
the ring. So a tenant's single job waits only for the jobs already running (and other
newcomers), not for a turn behind every backlogged tenant. Newcomer priority gives no
one more than a fair share: a tenant is a newcomer again only after its queue ran
empty, so between two turns of a backlogged tenant every other tenant gets at most one
job.

A token that finds every tenant with pending jobs at its cap is *parked* (a counter)
rather than sent back to poll: with a tenant's hundreds of jobs waiting behind its cap,
polling tokens kept the workers busy spinning (about a thousand empty runs a second on
the webhook lane). The job that next finishes takes a parked token back (``finish``
says so, and the caller sends it), so a freed slot is used at once; the watchdog
(``unpark``) turns parked tokens back into real ones now and then, so a lost wake-up
costs at most one watchdog period.

A popped job is *in flight* under a lease (a sorted set scored by expiry). A worker
killed mid-job never finishes it: when its lease expires the next pop puts the job back
at the front of its tenant's list and reports it, so the caller sends a token for it.
Executors must therefore be idempotent (see ``content.jobs``).

Every operation is one Lua script, so concurrent workers never see half a change. Keys
carry the schema (``<prefix>jobs:<schema>``); the prefix carries the Celery queue's
name, so test runs and a development server sharing a Redis never mix. Keys are built
inside the scripts, which suits a single Redis (not Redis Cluster).

This module knows schemas, not what a job is: ``content.jobs`` stores jobs and runs
them.
"""

import time
from dataclasses import dataclass

from django.conf import settings

from tenants.errors import TenantError
from tenants.redis_store.keys import platform_key, state_redis
from tenants.redis_store.scripts import script


class HourlyLimitExceeded(TenantError):
    """The tenant's plan allows no more jobs this hour."""

    def __init__(self, message: str, *, limit: int, retry_after: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after = retry_after


@dataclass(frozen=True)
class Claim:
    """The outcome of one pop: the job to run (if any) and what else the caller must
    do to keep one token per job."""

    schema: str | None
    job_ref: str | None
    reclaimed: int
    capped: bool
    next_lease_expiry: float | None
    attempt: int = 0
    # the token was parked (every pending tenant at its cap): not to be sent back
    parked: bool = False


_PUSH = """
local prefix, schema, cap = ARGV[1], ARGV[2], ARGV[3]
local jobs = prefix .. 'jobs:' .. schema
for i = 4, #ARGV do
  redis.call('RPUSH', jobs, ARGV[i])
end
if redis.call('HEXISTS', prefix .. 'held', schema) == 1 then
  redis.call('HSET', prefix .. 'held', schema, cap)
else
  redis.call('HSET', prefix .. 'caps', schema, cap)
end
if redis.call('SADD', prefix .. 'members', schema) == 1 then
  redis.call('RPUSH', prefix .. 'new', schema)
end
return redis.call('LLEN', jobs)
"""

_TAKE_ALLOWANCE = """
local key, count, limit, window = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]),
  tonumber(ARGV[3])
local used = tonumber(redis.call('GET', key) or '0')
if used + count > limit then
  local ttl = redis.call('TTL', key)
  if ttl < 0 then ttl = window end
  return {0, used, ttl}
end
redis.call('INCRBY', key, count)
if used == 0 then redis.call('EXPIRE', key, window) end
return {1, used + count, 0}
"""

# Reclaim expired leases first (each goes back to the front of its tenant's list and
# the tenant to the front of the newcomers), then walk the newcomers and then the ring
# once: the first tenant under its cap with a job gives it. A tenant served with jobs
# left goes to the back of the ring.
_POP = """
local prefix, now, lease, default_cap, park = ARGV[1], tonumber(ARGV[2]),
  tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1'
local ring, new, members = prefix .. 'ring', prefix .. 'new', prefix .. 'members'
local flying = prefix .. 'inflight-schemas'
local reclaimed = 0
for _, schema in ipairs(redis.call('SMEMBERS', flying)) do
  local inflight = prefix .. 'inflight:' .. schema
  local expired = redis.call('ZRANGEBYSCORE', inflight, '-inf', now)
  for i = #expired, 1, -1 do
    redis.call('ZREM', inflight, expired[i])
    redis.call('LPUSH', prefix .. 'jobs:' .. schema, expired[i])
    reclaimed = reclaimed + 1
  end
  if #expired > 0 and redis.call('SADD', members, schema) == 1 then
    redis.call('LPUSH', new, schema)
  end
  if redis.call('ZCARD', inflight) == 0 then redis.call('SREM', flying, schema) end
end
local capped = 0
local function take(list)
  local turns = redis.call('LLEN', list)
  for _ = 1, turns do
    local schema = redis.call('LPOP', list)
    if not schema then return nil end
    local jobs = prefix .. 'jobs:' .. schema
    local inflight = prefix .. 'inflight:' .. schema
    local cap = tonumber(redis.call('HGET', prefix .. 'caps', schema) or default_cap)
    if redis.call('ZCARD', inflight) < cap then
      local ref = redis.call('LPOP', jobs)
      if ref then
        redis.call('ZADD', inflight, now + lease, ref)
        redis.call('SADD', flying, schema)
        local attempt = redis.call('HINCRBY', prefix .. 'attempts:' .. schema, ref, 1)
        if redis.call('LLEN', jobs) > 0 then
          redis.call('RPUSH', ring, schema)
        else
          redis.call('SREM', members, schema)
        end
        return {schema, ref, attempt}
      end
      redis.call('SREM', members, schema)
    else
      capped = 1
      redis.call('RPUSH', ring, schema)
    end
  end
  return nil
end
local got = take(new) or take(ring)
if got then return {got[1], got[2], reclaimed, capped, '', got[3]} end
if capped == 1 and park then
  redis.call('INCR', prefix .. 'parked')
  return {'', '', reclaimed, 2, '', 0}
end
local earliest = ''
for _, schema in ipairs(redis.call('SMEMBERS', flying)) do
  local first = redis.call('ZRANGE', prefix .. 'inflight:' .. schema, 0, 0,
    'WITHSCORES')
  if first[2] and (earliest == '' or tonumber(first[2]) < tonumber(earliest)) then
    earliest = first[2]
  end
end
return {'', '', reclaimed, capped, earliest, 0}
"""

_FINISH = """
local prefix, schema, ref = ARGV[1], ARGV[2], ARGV[3]
local inflight = prefix .. 'inflight:' .. schema
redis.call('ZREM', inflight, ref)
redis.call('HDEL', prefix .. 'attempts:' .. schema, ref)
if redis.call('ZCARD', inflight) == 0 then
  redis.call('SREM', prefix .. 'inflight-schemas', schema)
end
if tonumber(redis.call('GET', prefix .. 'parked') or '0') > 0 then
  redis.call('DECR', prefix .. 'parked')
  return 1
end
return 0
"""

_UNPARK = """
local parked = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('DEL', KEYS[1])
return parked
"""

# A job that did one slice of its work goes back to the end of its tenant's list (and
# the tenant to the back of the ring, not among the newcomers: it had its turn), so
# other tenants' jobs run between its slices.
_REQUEUE = """
local prefix, schema, ref = ARGV[1], ARGV[2], ARGV[3]
local inflight = prefix .. 'inflight:' .. schema
redis.call('ZREM', inflight, ref)
redis.call('HDEL', prefix .. 'attempts:' .. schema, ref)
if redis.call('ZCARD', inflight) == 0 then
  redis.call('SREM', prefix .. 'inflight-schemas', schema)
end
redis.call('RPUSH', prefix .. 'jobs:' .. schema, ref)
if redis.call('SADD', prefix .. 'members', schema) == 1 then
  redis.call('RPUSH', prefix .. 'ring', schema)
end
return redis.call('LLEN', prefix .. 'jobs:' .. schema)
"""

# A held tenant's cap is 0 (pops pass it by, its jobs wait); its own cap is kept
# aside until the hold is released.
_HOLD = """
local prefix, schema, default_cap = ARGV[1], ARGV[2], ARGV[3]
local caps, held = prefix .. 'caps', prefix .. 'held'
if redis.call('HEXISTS', held, schema) == 0 then
  redis.call('HSET', held, schema, redis.call('HGET', caps, schema) or default_cap)
end
redis.call('HSET', caps, schema, 0)
return redis.call('LLEN', prefix .. 'jobs:' .. schema)
"""

_RELEASE = """
local prefix, schema = ARGV[1], ARGV[2]
local cap = redis.call('HGET', prefix .. 'held', schema)
if cap then
  redis.call('HSET', prefix .. 'caps', schema, cap)
  redis.call('HDEL', prefix .. 'held', schema)
end
return redis.call('LLEN', prefix .. 'jobs:' .. schema)
"""

_EXTEND = """
return redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[1]), ARGV[2])
"""


# The in-flight cap of a tenant whose cap was never pushed (its jobs were queued by an
# older release): the plan's cap arrives with its next push.
DEFAULT_CAP = 1


def _redis():
    return state_redis()


def key_prefix(queue: str | None = None) -> str:
    """Keys of one fair queue (``cms[:<env>]:fairq:<queue>:``): by default the publish
    jobs' Celery queue; other job families (backups) pass their own name, so their
    jobs never share a ring, a cap or a token with publishing."""
    return platform_key("fairq", queue or jobs_queue()) + ":"


def jobs_queue() -> str:
    """The Celery queue that carries the tokens."""
    return settings.CMS_JOBS_QUEUE


def lease_seconds() -> int:
    return settings.CMS_JOB_LEASE_SECONDS


def take_hourly_allowance(*, schema: str, count: int, limit: int) -> int:
    """Count ``count`` jobs against the tenant's hourly allowance, all or none
    (fixed one-hour windows); returns the jobs used this hour. Raises
    ``HourlyLimitExceeded`` when they do not fit."""
    window = 3600
    bucket = int(time.time()) // window
    key = f"{key_prefix()}rate:{schema}:{bucket}"
    allowed, used, retry_after = script(_TAKE_ALLOWANCE)(
        keys=[key], args=[count, limit, window]
    )
    if not allowed:
        raise HourlyLimitExceeded(
            f"This site's plan allows {limit} publish jobs per hour and "
            f"{int(used)} were queued this hour. Try again in {int(retry_after)} s.",
            limit=limit,
            retry_after=int(retry_after),
        )
    return int(used)


def push(
    *, schema: str, job_refs: list[str], cap: int, queue: str | None = None
) -> int:
    """Append jobs to the tenant's list (oldest first) and put the tenant on the ring;
    returns the tenant's pending count. ``cap`` is its in-flight cap (the plan's
    ``publish_concurrency``), kept for pops: a plan change applies from the next
    push."""
    if not job_refs:
        return 0
    return int(
        script(_PUSH)(
            args=[key_prefix(queue), schema, max(1, cap), *map(str, job_refs)]
        )
    )


def pop(
    *,
    now: float | None = None,
    queue: str | None = None,
    lease: int | None = None,
    park: bool = False,
) -> Claim:
    """Take the next job in fair order and lease it to the caller. With ``park``,
    a token that finds every pending tenant at its cap is parked (see above)."""
    schema, ref, reclaimed, capped, earliest, attempt = script(_POP)(
        args=[
            key_prefix(queue),
            repr(time.time() if now is None else now),
            lease or lease_seconds(),
            DEFAULT_CAP,
            "1" if park else "0",
        ]
    )
    schema = schema.decode() if isinstance(schema, bytes) else schema
    ref = ref.decode() if isinstance(ref, bytes) else ref
    earliest = earliest.decode() if isinstance(earliest, bytes) else earliest
    return Claim(
        schema=schema or None,
        job_ref=ref or None,
        reclaimed=int(reclaimed),
        capped=bool(capped),
        next_lease_expiry=float(earliest) if earliest else None,
        attempt=int(attempt),
        parked=int(capped) == 2,
    )


def finish(*, schema: str, job_ref: str, queue: str | None = None) -> bool:
    """Release a job's in-flight slot (done, failed, or gone). True when a parked
    token was taken back: the caller sends one token."""
    return bool(script(_FINISH)(args=[key_prefix(queue), schema, str(job_ref)]))


def unpark(queue: str | None = None) -> int:
    """Forget the parked tokens and return how many there were (the watchdog sends
    tokens for every waiting job instead)."""
    return int(script(_UNPARK)(keys=[f"{key_prefix(queue)}parked"]))


def requeue(*, schema: str, job_ref: str, queue: str | None = None) -> int:
    """Release a job's in-flight slot and queue it again at the end of its tenant's
    list (a job that runs in slices); returns the tenant's pending count."""
    return int(script(_REQUEUE)(args=[key_prefix(queue), schema, str(job_ref)]))


def position(*, schema: str, job_ref: str, queue: str | None = None) -> int | None:
    """How many of the tenant's jobs wait before this one (0: it is next), or None
    when it is not waiting (running, finished, or unknown)."""
    found = _redis().lpos(f"{key_prefix(queue)}jobs:{schema}", str(job_ref))
    return None if found is None else int(found)


def extend_lease(
    *, schema: str, job_ref: str, seconds: float, queue: str | None = None
) -> None:
    """Keep a job in flight ``seconds`` longer (a retry waiting out its backoff)."""
    script(_EXTEND)(
        keys=[f"{key_prefix(queue)}inflight:{schema}"],
        args=[repr(time.time() + seconds), str(job_ref)],
    )


def count_attempt(*, schema: str, job_ref: str, queue: str | None = None) -> int:
    """Count one more attempt of an in-flight job (a retry); returns its number.
    Attempts are counted here, not in the database, so that attempts whose worker died
    (and whose transaction rolled back) count too."""
    key = f"{key_prefix(queue)}attempts:{schema}"
    return int(_redis().hincrby(key, str(job_ref), 1))


def in_flight(*, schema: str, queue: str | None = None) -> set[str]:
    """References of the tenant's jobs that a worker holds right now."""
    refs = _redis().zrange(f"{key_prefix(queue)}inflight:{schema}", 0, -1)
    return {ref.decode() if isinstance(ref, bytes) else ref for ref in refs}


def pending(*, schema: str, queue: str | None = None) -> int:
    return int(_redis().llen(f"{key_prefix(queue)}jobs:{schema}"))


def newcomer_waiting(*, other_than: str) -> bool:
    """Whether a tenant other than ``other_than`` waits with its first job for the
    next free worker (newcomers are served before the ring: the worker that frees up
    takes it). A tenant is on the newcomers' list at most once, so two entries tell."""
    first = _redis().lrange(f"{key_prefix()}new", 0, 1)
    return any(
        (name.decode() if isinstance(name, bytes) else name) != other_than
        for name in first
    )


def hold(*, schema: str, queue: str | None = None, client=None) -> int:
    """Stop handing the tenant's jobs to workers (they wait in its list; new ones
    join them) until ``release``: a live move keeps the jobs from running on the
    pod the tenant is leaving (``client``: that pod's Redis). Returns the tenant's
    pending count."""
    args = [key_prefix(queue), schema, DEFAULT_CAP]
    return int(script(_HOLD)(args=args, client=client))


def release(*, schema: str, queue: str | None = None, client=None) -> int:
    """End a hold (the move was rolled back): the tenant's cap is back and its
    waiting jobs run as tokens come (parked ones return with the watchdog)."""
    return int(script(_RELEASE)(args=[key_prefix(queue), schema], client=client))


def running(*, schema: str, queue: str | None = None, client=None) -> int:
    """The tenant's jobs a worker holds under a lease that has not expired (a job
    of a dead worker counts no more once its lease is over)."""
    key = f"{key_prefix(queue)}inflight:{schema}"
    return int((client or _redis()).zcount(key, f"({time.time()!r}", "+inf"))


def known_refs(*, schema: str, queue: str | None = None) -> set[str]:
    """References of the tenant's jobs the queue holds: waiting or in flight."""
    waiting = _redis().lrange(f"{key_prefix(queue)}jobs:{schema}", 0, -1)
    return {
        ref.decode() if isinstance(ref, bytes) else ref for ref in waiting
    } | in_flight(schema=schema, queue=queue)


def pending_by_tenant(queue: str | None = None) -> dict[str, int]:
    """Jobs waiting (not in flight) per tenant schema."""
    client = _redis()
    prefix = key_prefix(queue)
    schemas = sorted(
        member.decode() if isinstance(member, bytes) else member
        for member in client.smembers(f"{prefix}members")
    )
    if not schemas:
        return {}
    pipe = client.pipeline(transaction=False)
    for schema in schemas:
        pipe.llen(f"{prefix}jobs:{schema}")
    return dict(zip(schemas, map(int, pipe.execute()), strict=True))


def clear(*, schema: str | None = None, queue: str | None = None, client=None) -> None:
    """Forget queued and in-flight references (tests and benchmarks; a tenant's
    deletion or move: ``client``, the Redis of the pod it left). Without a schema,
    the whole fair queue of this Celery queue."""
    client = client or _redis()
    prefix = key_prefix(queue)
    if schema is None:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        return
    client.delete(
        f"{prefix}jobs:{schema}",
        f"{prefix}inflight:{schema}",
        f"{prefix}attempts:{schema}",
    )
    client.srem(f"{prefix}members", schema)
    client.hdel(f"{prefix}held", schema)
    client.srem(f"{prefix}inflight-schemas", schema)
    client.lrem(f"{prefix}ring", 0, schema)
    client.lrem(f"{prefix}new", 0, schema)
