"""Host -> Tenant resolution without a database query per request.

Each worker process keeps a local map of host to tenant (with its plan). Every write to
tenants, domains or plans bumps a generation counter in Redis; a process compares its
generation with Redis at most every ``CMS_TENANT_CACHE_CHECK_SECONDS`` and drops its map
when it changed. So a change reaches every process within that interval, and the hot
path costs one dictionary lookup plus, a few times a second, one Redis GET.

A loaded map never waits on the database: while Redis cannot be asked, a process
keeps its map for up to ``CMS_TENANT_MAP_MAX_STALE_SECONDS`` (then reloads hosts one
by one); while the database is out, a host dropped by a generation change is still
answered from the map it was dropped from, until the database answers again.
"""

import copy
import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, connection
from django.db.models.base import ModelState
from django.http import HttpRequest
from django.http.request import split_domain_port
from django_redis import get_redis_connection
from wagtail.models import Site

from tenants.models import Domain, Tenant

logger = logging.getLogger(__name__)

GENERATION_KEY = "cms:tenant-map:generation"
# An unbounded map would let random Host headers grow a worker's memory without end.
MAX_CACHED_HOSTS = 20_000


class _TenantMap:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hosts: dict[str, Tenant | None] = {}
        # (schema, hostname, port) -> the Wagtail Site Wagtail would find, or None
        self._sites: dict[tuple[str, str, int], Site | None] = {}
        # the map before the last generation change: answers while the database
        # cannot be asked
        self._previous: dict[str, Tenant | None] = {}
        self._generation: bytes | None = None
        self._checked_at = 0.0
        self._confirmed_at = time.monotonic()

    def _check_generation(self) -> None:
        now = time.monotonic()
        interval = getattr(settings, "CMS_TENANT_CACHE_CHECK_SECONDS", 0.5)
        if now - self._checked_at < interval:
            return
        self._checked_at = now
        try:
            generation = get_redis_connection("default").get(GENERATION_KEY)
        except Exception:  # noqa: BLE001 - Redis down must not take pages down
            max_stale = getattr(settings, "CMS_TENANT_MAP_MAX_STALE_SECONDS", 30)
            if now - self._confirmed_at <= max_stale:
                return  # keep serving the map; changes wait for Redis
            logger.warning("tenant map: Redis unreachable, dropping local map")
            generation = None
            self._previous = self._hosts or self._previous
            self._hosts = {}
        else:
            self._confirmed_at = now
        if generation != self._generation:
            self._previous = self._hosts or self._previous
            self._hosts = {}
            self._sites = {}
            self._generation = generation
            # A tenant deleted and created again under its slug (an import, say) may
            # number its content types differently: forget the ones kept per schema.
            ContentType.objects.clear_cache()

    def get(self, host: str) -> Tenant | None:
        with self._lock:
            self._check_generation()
            if host in self._hosts:
                return self._hosts[host]
        try:
            tenant = _load_tenant(host)
        except DatabaseError:
            # the database is out: the host as this process last knew it, if it did
            if host in self._previous:
                return self._previous[host]
            raise
        with self._lock:
            if len(self._hosts) >= MAX_CACHED_HOSTS:
                self._hosts = {}
            self._hosts[host] = tenant
        return tenant

    def site(self, key: tuple[str, str, int], find: Callable[[], Site | None]):
        """The Site for ``key``, found by ``find`` the first time (the generation
        was checked by ``get`` for this request already)."""
        with self._lock:
            if key in self._sites:
                return self._sites[key]
        site = find()
        with self._lock:
            if len(self._sites) >= MAX_CACHED_HOSTS:
                self._sites = {}
            self._sites[key] = site
        return site

    def clear(self) -> None:
        with self._lock:
            self._previous = self._hosts or self._previous
            self._hosts = {}
            self._sites = {}
            self._checked_at = 0.0


_tenant_map = _TenantMap()


def _load_tenant(host: str) -> Tenant | None:
    domain = (
        Domain.objects.select_related("tenant__plan")
        .filter(domain=host)
        .exclude(tenant__status=Tenant.Status.TEMPLATE)
        .first()
    )
    return domain.tenant if domain else None


def resolve_tenant(host: str) -> Tenant | None:
    """Return the tenant serving ``host`` (lower-case, without port), or None."""
    return _tenant_map.get(host)


def tenant_site(request: HttpRequest) -> Site | None:
    """The Wagtail Site serving ``request`` in the active tenant schema: what
    ``Site.find_for_request`` would return, without its query per request.

    Found by Wagtail's own lookup once per schema, hostname and port, and kept with the
    host map (a Site saved or deleted anywhere bumps its generation). Each request gets
    its own copy without the loaded root page, so that the page is read fresh."""
    hostname = split_domain_port(request._get_raw_host())[0]
    key = (connection.schema_name, hostname, request.get_port())
    found = _tenant_map.site(key, lambda: Site._find_for_request(request))
    if found is None:
        return None
    site = copy.copy(found)
    site._state = ModelState()
    site._state.adding = False
    site._state.db = found._state.db
    return site


def _site_changed(sender, **kwargs) -> None:
    invalidate_tenant_map()


def connect_site_signals() -> None:
    """A Site saved or deleted (in any tenant) drops every process's cached Sites."""
    from django.db.models.signals import post_delete, post_save

    for signal in (post_save, post_delete):
        signal.connect(
            _site_changed, sender=Site, dispatch_uid=f"tenants.site.{signal}"
        )


def invalidate_tenant_map() -> None:
    """Make every process drop its host map (after tenant, domain or plan writes)."""
    _tenant_map.clear()
    try:
        get_redis_connection("default").incr(GENERATION_KEY)
    except Exception:
        logger.exception("tenant map: could not bump the generation in Redis")
