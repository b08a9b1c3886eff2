"""What one process learned about a tenant's schema, kept in Redis for every other.

A worker keeps each tenant's Wagtail Site and content types in memory once it has read
them; a fresh worker (gunicorn recycles them, a pool starts) reads them again for
every tenant it meets. With a thousand tenants that is nearly every page such a
worker serves, and each read is a query into a schema the worker's new database
connection has not touched yet. Kept here, the first worker to read them pays; the
others ask Redis once per tenant.

Entries are keyed by the host map's generation (tenants.registry.resolution), which
moves on whenever a tenant, domain, plan or Site is written and when a migration ends:
an entry can only be read by processes that would have kept the same thing in memory.
They are tenant keys (deleted with the tenant) and expire after a day. Redis errors
read as misses: the caller reads the database, as without this module.
"""

import json
import logging
from typing import Any

from tenants.redis_store.keys import cache_redis, tenant_key

logger = logging.getLogger(__name__)

SHARED_SECONDS = 24 * 3600
MISSING = object()


def _key(schema: str, generation: bytes, purpose: str, parts: tuple) -> str:
    return tenant_key(schema, "shared", purpose, generation.decode(), *parts)


def read_shared(
    schema: str, generation: bytes | None, purpose: str, *parts: str | int
) -> Any:
    """The value stored for this generation, or ``MISSING``."""
    if generation is None:
        return MISSING
    try:
        raw = cache_redis().get(_key(schema, generation, purpose, parts))
    except Exception:  # noqa: BLE001 - a miss: the caller reads the database
        return MISSING
    return MISSING if raw is None else json.loads(raw)


def write_shared(
    schema: str, generation: bytes | None, purpose: str, *parts: str | int, value: Any
) -> None:
    if generation is None:
        return
    try:
        cache_redis().set(
            _key(schema, generation, purpose, parts),
            json.dumps(value),
            ex=SHARED_SECONDS,
        )
    except Exception:  # the next process reads the database too
        logger.debug("shared schema state: Redis unreachable", exc_info=True)
