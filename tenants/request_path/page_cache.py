"""Per-tenant page cache for anonymous visitors: the storage and the lookup.

A public page read by a visitor without a session cookie is the same for every such
visitor, so its rendered response is kept in Redis and served without touching
PostgreSQL or the template engine. Entries are tenant keys (tenants.redis_store.keys)
named by host, path and query. Reading happens inside the request decision's one
round trip (``PAGE_LOOKUP_LUA``); this module stores, names and invalidates.

Whether a request or a response may be cached is not decided here: ``content``
registers that policy (``set_policy``), since it knows pages, their privacy and their
restrictions. Headers added by the middleware inside ``PublicPageMiddleware``
(X-Frame-Options, say) are stored with the page; those of the middleware outside it
(security headers, the request id) are added to every answer.

Invalidation is a per-tenant generation counter: each entry records the generation it
was rendered under, and a change a visitor could see bumps that tenant's counter (one
``INCR``), which turns every entry of that tenant - and no other tenant's - into a
miss. An entry is a hash of its generation (``g``) and the pickled page (``p``), so the
lookup compares generations in Redis and sends back only a current page. An entry is
tagged with the generation read *before* rendering, so a page rendered while a publish
commits is never stored as current.

Workers also keep pages they answered in memory (tenants.request_path.local_hits):
each bump is announced on a Redis channel (``generations_channel``) with the new
generation, and ``newest_generation`` is the newest one this process has heard of (its
own purges at once, others' from the channel); a page of an older generation is never
answered from memory.
"""

import hashlib
import logging
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse

from tenants.redis_store.keys import (
    bump_generation,
    cache_redis,
    platform_key,
    tenant_key,
)

logger = logging.getLogger(__name__)

STATUS_HEADER = "X-Page-Cache"
# Headers that belong to one response only, or are added again on the way out.
_UNSTORED_HEADERS = frozenset({"set-cookie", "vary", "ratelimit", "ratelimit-policy"})

# The entry of the current generation, or nothing: returns generation, page.
PAGE_LOOKUP_LUA = """
local function cached_page(generation_key, entry_key)
  local generation = redis.call('GET', generation_key)
  if not generation then return false, false end
  local entry = redis.call('HMGET', entry_key, 'g', 'p')
  if entry[1] == generation and entry[2] then return generation, entry[2] end
  return generation, false
end
"""


@dataclass(frozen=True)
class CachedPage:
    """What is kept of a response: small, explicit, and picklable. (Its generation
    is stored beside it, in the entry's hash, for the lookup to compare.)"""

    status: int
    headers: tuple[tuple[str, str], ...]
    content: bytes

    def response(self) -> HttpResponse:
        response = HttpResponse(self.content, status=self.status)
        for name, value in self.headers:
            response[name] = value
        return response


@dataclass(frozen=True)
class CachePolicy:
    """Which requests may be answered from the cache and which responses stored."""

    request: Callable[[HttpRequest], bool]
    response: Callable[[HttpRequest, HttpResponse], bool]
    # Query parameters that change what a cached page shows; every other one
    # (``utm_*``, a random cache-buster) is left out of the entry's name.
    query_params: frozenset[str] = field(default_factory=frozenset)


def _anonymous_read(request: HttpRequest) -> bool:
    return (
        request.method in ("GET", "HEAD")
        and settings.SESSION_COOKIE_NAME not in request.COOKIES
    )


def _plain_200(request: HttpRequest, response: HttpResponse) -> bool:
    return response.status_code == 200 and not response.streaming


_policy = CachePolicy(request=_anonymous_read, response=_plain_200)


def set_policy(policy: CachePolicy) -> None:
    """Installed by ``content`` at start-up."""
    global _policy
    _policy = policy


def is_cacheable_request(request: HttpRequest) -> bool:
    return _policy.request(request)


def is_cacheable_response(request: HttpRequest, response: HttpResponse) -> bool:
    return _policy.response(request, response)


def cache_seconds() -> int:
    return int(getattr(settings, "CMS_PAGE_CACHE_SECONDS", 0))


def generation_key(schema: str) -> str:
    return tenant_key(schema, "page", "generation")


def generations_channel() -> str:
    """The channel a bump is announced on, as ``<schema> <generation>``."""
    return platform_key("page", "generations")


# schema -> the newest page generation this process has heard of
_newest: dict[str, int] = {}


def note_generation(schema: str, generation: int) -> None:
    """A generation of ``schema``'s pages heard of (a purge here, or announced)."""
    if generation > _newest.get(schema, 0):
        _newest[schema] = generation


def newest_generation(schema: str) -> int:
    """The newest generation of ``schema``'s pages this process has heard of (0:
    none): a page of an older one is out of date."""
    return _newest.get(schema, 0)


def forget_generations() -> None:
    """Heard of nothing (the channel was lost: announcements may have been missed)."""
    _newest.clear()


def cache_query(query_string: str) -> str:
    """The part of a query string that names a cached page: only the parameters the
    policy and ``CMS_PAGE_CACHE_QUERY_PARAMS`` allow, in a fixed order. So
    ``?utm_source=x`` or ``?b=<random>`` is the page without a query, and a flood of
    made-up query strings is answered from the cache instead of rendering each."""
    if not query_string:
        return ""
    allowed = _policy.query_params | frozenset(
        getattr(settings, "CMS_PAGE_CACHE_QUERY_PARAMS", ())
    )
    kept = sorted(
        (name, value)
        for name, value in parse_qsl(query_string, keep_blank_values=True)
        if name in allowed
    )
    return urlencode(kept)


def entry_key(schema: str, request: HttpRequest) -> str:
    """Host (with port), path and the query's allowed part: the same path on two
    hosts of one tenant may render different absolute URLs."""
    host = request.META.get("HTTP_HOST", "").lower()
    query = cache_query(request.META.get("QUERY_STRING", ""))
    digest = hashlib.sha256(f"{host}\n{request.path}\n{query}".encode()).hexdigest()
    return tenant_key(schema, "page", "entry", digest[:40])


def start_generation(schema: str) -> int | None:
    """A tenant's first generation: a timestamp, so a counter lost from Redis never
    restarts at a value that old entries still carry."""
    client = cache_redis()
    key = generation_key(schema)
    try:
        client.set(key, time.time_ns(), nx=True)
        value = client.get(key)
    except Exception as exc:  # noqa: BLE001 - the page is served uncached
        logger.warning("page cache: no generation for %s: %s", schema, exc)
        return None
    return int(value) if value is not None else None


def store(
    schema: str, request: HttpRequest, response: HttpResponse, generation: int
) -> None:
    if hasattr(response, "render") and not response.is_rendered:
        response.render()
    entry = CachedPage(
        status=response.status_code,
        headers=tuple(
            (name, value)
            for name, value in response.items()
            if name.lower() not in _UNSTORED_HEADERS
        ),
        content=response.content,
    )
    key = entry_key(schema, request)
    payload = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        pipe = cache_redis().pipeline(transaction=False)
        pipe.hset(key, mapping={"g": str(generation), "p": payload})
        pipe.expire(key, cache_seconds())
        pipe.execute()
    except Exception as exc:  # noqa: BLE001 - the page was served; caching is a bonus
        logger.warning("page cache: could not store %s: %s", request.path, exc)


def announce_new_generation(schema: str, client=None) -> int:
    """Move ``schema``'s page generation on (every entry stored before is a miss)
    and announce it to every worker, which drops the pages it keeps in memory.
    ``client``: another pod's Redis (a move's source)."""
    client = client or cache_redis()
    generation = bump_generation(client, generation_key(schema))
    note_generation(schema, generation)
    client.publish(generations_channel(), f"{schema} {generation}")
    return generation


def purge_tenant_pages(schema: str | None = None) -> None:
    """Invalidate every cached page of a tenant (by default the one whose schema is
    active): at once, and again when the current transaction commits (a visitor who
    read the old page while it was committing may have cached it under the first
    bump; after a rollback the first bump merely costs one re-render per page)."""
    schema = schema or getattr(connection, "schema_name", "-")

    def bump() -> None:
        try:
            announce_new_generation(schema)
        except Exception:
            logger.exception("page cache: could not purge tenant %s", schema)

    bump()
    if connection.in_atomic_block:
        transaction.on_commit(bump)
