"""Host -> Tenant resolution without a database query per request.

Each worker process keeps a local map of host to tenant (with its plan). Every write to
tenants, domains or plans bumps a generation counter in Redis; a process compares its
generation with Redis at most every ``CMS_TENANT_CACHE_CHECK_SECONDS`` and drops its map
when it changed. So a change reaches every process within that interval, and the hot
path costs one dictionary lookup plus, a few times a second, one Redis GET.
"""

import logging
import threading
import time

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django_redis import get_redis_connection

from tenants.models import Domain, Tenant

logger = logging.getLogger(__name__)

GENERATION_KEY = "cms:tenant-map:generation"
# An unbounded map would let random Host headers grow a worker's memory without end.
MAX_CACHED_HOSTS = 20_000


class _TenantMap:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hosts: dict[str, Tenant | None] = {}
        self._generation: bytes | None = None
        self._checked_at = 0.0

    def _check_generation(self) -> None:
        now = time.monotonic()
        interval = getattr(settings, "CMS_TENANT_CACHE_CHECK_SECONDS", 0.5)
        if now - self._checked_at < interval:
            return
        self._checked_at = now
        try:
            generation = get_redis_connection("default").get(GENERATION_KEY)
        except Exception:  # noqa: BLE001 - Redis down must not take pages down
            logger.warning("tenant map: Redis unreachable, dropping local map")
            generation = None
            self._hosts = {}
        if generation != self._generation:
            self._hosts = {}
            self._generation = generation
            # A tenant deleted and created again under its slug (an import, say) may
            # number its content types differently: forget the ones kept per schema.
            ContentType.objects.clear_cache()

    def get(self, host: str) -> Tenant | None:
        with self._lock:
            self._check_generation()
            if host in self._hosts:
                return self._hosts[host]
        tenant = _load_tenant(host)
        with self._lock:
            if len(self._hosts) >= MAX_CACHED_HOSTS:
                self._hosts = {}
            self._hosts[host] = tenant
        return tenant

    def clear(self) -> None:
        with self._lock:
            self._hosts = {}
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


def invalidate_tenant_map() -> None:
    """Make every process drop its host map (after tenant, domain or plan writes)."""
    _tenant_map.clear()
    try:
        get_redis_connection("default").incr(GENERATION_KEY)
    except Exception:
        logger.exception("tenant map: could not bump the generation in Redis")
