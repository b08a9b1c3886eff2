"""The one way to name a key on Redis.

Every key the platform writes itself starts with ``cms:``, then the environment prefix
(``CMS_REDIS_KEY_PREFIX``: test runs and a development server sharing one Redis never
meet), then either a platform-wide purpose or ``t:<schema>:`` for a tenant's own keys.
A tenant's keys therefore share one pattern (``tenant_key_pattern``), so deleting a
tenant finds them all.

Keys that a dependency names itself (django-ratelimit's counters, Django's cache) go
through the cache alias's ``KEY_PREFIX``, set from the same environment prefix.

Two Redis clients, named for what they hold: ``state`` (counters, concurrency slots,
queues, usage: errors surface so callers apply their policy) and ``cache`` (pages and
the tenant map's generation: Django's ``default`` alias, where errors read as misses).
"""

import time

from django.conf import settings
from django_redis import get_redis_connection

STATE_ALIAS = "state"
CACHE_ALIAS = "default"


def env_prefix() -> str:
    return getattr(settings, "CMS_REDIS_KEY_PREFIX", "")


def _root() -> str:
    prefix = env_prefix()
    return f"cms:{prefix}:" if prefix else "cms:"


def platform_key(purpose: str, *parts: str | int) -> str:
    """A key shared by every tenant (usage batches, fair-queue rings, generations)."""
    return _root() + ":".join([purpose, *map(str, parts)])


def tenant_key(schema: str, purpose: str, *parts: str | int) -> str:
    """A key holding one tenant's data (slots, page cache)."""
    return _root() + ":".join(["t", schema, purpose, *map(str, parts)])


def tenant_key_pattern(schema: str) -> str:
    """Matches every key of ``tenant_key(schema, ...)`` (for SCAN)."""
    return f"{_root()}t:{schema}:*"


def state_redis():
    """The client of the stateful Redis (counters, slots, queues, usage)."""
    return get_redis_connection(STATE_ALIAS)


def cache_redis():
    """The client of the cache Redis (page cache, host-map generation)."""
    return get_redis_connection(CACHE_ALIAS)


def bump_generation(client, key: str) -> int:
    """Move a generation counter on, never back to a value a process may remember.

    Processes compare generations for equality. A counter lost from Redis (a restart
    without persistence, an eviction, a test wiping its keys) must not restart at 1
    and climb back to the value a process still holds, which would keep that
    process's cached view for good: a lost counter starts again from the clock."""
    pipe = client.pipeline(transaction=False)
    pipe.set(key, time.time_ns(), nx=True)
    pipe.incr(key)
    return pipe.execute()[1]
