"""Host -> Tenant resolution without a database query per request.

Each worker process keeps a local map of host to tenant (with its plan). Every write to
tenants, domains or plans bumps a generation counter in Redis; a process compares its
generation with Redis at most every ``CMS_TENANT_CACHE_CHECK_SECONDS`` and drops its map
when it changed. So a change reaches every process within that interval, and the hot
path costs one dictionary lookup plus, a few times a second, one Redis GET.

Unknown hosts cost no query either: with the map, each process keeps the set of every
host name a tenant owns (one query per generation, names only). A Host header outside
that set is unknown at once, whatever random names a flood sends, and never enters the
map, so it cannot evict the tenants that are known. The set is the negative cache: it
is bounded by the number of real domains (not by what clients send), and dropped with
the map whenever the generation changes - a domain added anywhere is found within the
check interval.

A loaded map never waits on the database: while Redis cannot be asked, a process
keeps its map for up to ``CMS_TENANT_MAP_MAX_STALE_SECONDS`` (then reloads hosts one
by one); while the database is out, a host dropped by a generation change is still
answered from the map it was dropped from, until the database answers again.
"""

import functools
import logging
import math
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, router, transaction
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest
from wagtail.models import Site

from tenants.adapters.django import forget_content_types
from tenants.adapters.wagtail import find_site
from tenants.models import Domain, Tenant
from tenants.redis_store.keys import bump_generation, cache_redis, platform_key
from tenants.registry.shared import MISSING, read_shared, write_shared

logger = logging.getLogger(__name__)


def generation_key() -> str:
    return platform_key("tenant-map", "generation")


# An unbounded map would let random Host headers grow a worker's memory without end.
MAX_CACHED_HOSTS = 20_000


class _TenantMap:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hosts: dict[str, Tenant | None] = {}
        # every host some tenant owns; None until loaded for this generation
        self._known: frozenset[str] | None = None
        # (schema, hostname, port) -> the field values of the Site Wagtail would
        # find (``_site_values``), or None
        self._sites: dict[tuple[str, str, int], list | None] = {}
        # verified domains of active tenants: the names Caddy may get certificates
        # for (tenants.domains.tls_ask), loaded whole once per generation
        self._certificate_hosts: frozenset[str] | None = None
        # the map before the last generation change: answers while the database
        # cannot be asked
        self._previous: dict[str, Tenant | None] = {}
        self._generation: bytes | None = None
        self._recheck_now()
        self._confirmed_at = time.monotonic()

    def _recheck_now(self) -> None:
        """Make the next lookup check the host map's generation, interval or not."""
        self._checked_at = -math.inf

    def _check_generation(self) -> None:
        now = time.monotonic()
        interval = getattr(settings, "CMS_TENANT_CACHE_CHECK_SECONDS", 0.5)
        if now - self._checked_at < interval:
            return
        self._checked_at = now
        try:
            client = cache_redis()
            generation = client.get(generation_key())
            if generation is None:
                # never set, or lost (Redis restarted empty): start one, so that
                # what processes share (tenants.registry.shared) has a generation
                bump_generation(client, generation_key())
                generation = client.get(generation_key())
        except Exception:  # noqa: BLE001 - Redis down must not take pages down
            max_stale = getattr(settings, "CMS_TENANT_MAP_MAX_STALE_SECONDS", 30)
            if now - self._confirmed_at <= max_stale:
                return  # keep serving the map; changes wait for Redis
            logger.warning("tenant map: Redis unreachable, dropping local map")
            generation = None
            self._previous = self._hosts or self._previous
            self._hosts = {}
            self._known = None
        else:
            self._confirmed_at = now
        if generation != self._generation:
            self._previous = self._hosts or self._previous
            self._hosts = {}
            self._known = None
            self._sites = {}
            self._certificate_hosts = None
            self._generation = generation
            # A tenant deleted and created again under its slug (an import, say) may
            # number its content types differently: forget the ones kept per schema.
            forget_content_types()

    def get(self, host: str) -> Tenant | None:
        with self._lock:
            self._check_generation()
            if host in self._hosts:
                return self._hosts[host]
            known = self._known
        try:
            if known is None:
                known = _load_known_hosts()
                with self._lock:
                    self._known = known
            if host not in known:
                return None  # unknown: no query, and nothing remembered about it
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

    def preload(self) -> int:
        with self._lock:
            self._recheck_now()
            self._check_generation()
            generation = self._generation
        hosts = {
            domain.domain.lower(): _with_primary_host(domain)
            for domain in _served_domains()[:MAX_CACHED_HOSTS]
        }
        known = _load_known_hosts() if len(hosts) >= MAX_CACHED_HOSTS else None
        try:
            changed = cache_redis().get(generation_key()) != generation
        except Exception:  # noqa: BLE001 - Redis down: the rows are the newest known
            changed = False
        with self._lock:
            if changed or self._generation != generation:
                return 0  # changed meanwhile: the rows read may predate the change
            self._hosts = hosts
            self._known = known if known is not None else frozenset(hosts)
        return len(hosts)

    def certificate_hosts(self, *, fresh: bool = False) -> frozenset[str]:
        with self._lock:
            if fresh:
                self._recheck_now()
            self._check_generation()
            hosts = self._certificate_hosts
        if hosts is None:
            hosts = _load_certificate_hosts()
            with self._lock:
                self._certificate_hosts = hosts
        return hosts

    def site(
        self, key: tuple[str, str, int], find: Callable[[], Site | None]
    ) -> list | None:
        """The field values of the Site for ``key``: kept in this process, else
        shared by another one (tenants.registry.shared), else found by ``find`` and
        shared (the generation was checked by ``get`` for this request already)."""
        with self._lock:
            if key in self._sites:
                return self._sites[key]
            generation = self._generation
        values = read_shared(key[0], generation, "site", *key[1:])
        if values is MISSING:
            values = _site_values(find())
            write_shared(key[0], generation, "site", *key[1:], value=values)
        with self._lock:
            if len(self._sites) >= MAX_CACHED_HOSTS:
                self._sites = {}
            self._sites[key] = values
        return values

    def generation(self) -> bytes | None:
        """The generation this process holds, checked against Redis first (at most
        every ``CMS_TENANT_CACHE_CHECK_SECONDS``)."""
        with self._lock:
            self._check_generation()
            return self._generation

    def clear(self) -> None:
        with self._lock:
            self._previous = self._hosts or self._previous
            self._hosts = {}
            self._known = None
            self._sites = {}
            self._certificate_hosts = None
            self._recheck_now()


_tenant_map = _TenantMap()


def _load_known_hosts() -> frozenset[str]:
    """Every host name served by a tenant (verified domains; templates serve none):
    one query."""
    return frozenset(
        name.lower()
        for name in Domain.objects.filter(status=Domain.Status.VERIFIED)
        .exclude(tenant__status=Tenant.Status.TEMPLATE)
        .values_list("domain", flat=True)
    )


def _served_domains():
    """Verified domains of tenants that serve (templates do not), each with its
    tenant and plan and the tenant's ``primary_host`` (its canonical domain, for
    tenants.domains.policy) read in the same query."""
    primary = Domain.objects.filter(
        tenant=OuterRef("tenant"), is_primary=True, status=Domain.Status.VERIFIED
    ).values("domain")[:1]
    return (
        Domain.objects.select_related("tenant__plan")
        .filter(status=Domain.Status.VERIFIED)
        .exclude(tenant__status=Tenant.Status.TEMPLATE)
        .annotate(primary_host=Subquery(primary))
    )


def _with_primary_host(domain: Domain) -> Tenant:
    tenant = domain.tenant
    tenant.primary_host = domain.primary_host or domain.domain.lower()
    return tenant


def _load_tenant(host: str) -> Tenant | None:
    """The tenant a verified domain serves."""
    domain = _served_domains().filter(domain=host).first()
    return None if domain is None else _with_primary_host(domain)


def preload_tenant_map() -> int:
    """Load every served host into this process's map in one query; the number of
    hosts loaded.

    A gunicorn worker calls it when it starts (cms_project/gunicorn.conf.py): a fresh
    worker then answers cached pages of every tenant without asking the database -
    also when it was started (or recycled) while the database is out, when a host it
    had to look up would get a 503 while its neighbours serve the page."""
    return _tenant_map.preload()


def _load_certificate_hosts() -> frozenset[str]:
    return frozenset(
        Domain.objects.filter(
            status=Domain.Status.VERIFIED, tenant__status=Tenant.Status.ACTIVE
        ).values_list("domain", flat=True)
    )


def certificate_hosts(*, fresh: bool = False) -> frozenset[str]:
    """Every verified domain of an active tenant, from the process's cache: one
    query per generation, none per name asked about. ``fresh`` compares the
    generation with Redis now rather than at most every
    ``CMS_TENANT_CACHE_CHECK_SECONDS``: a domain verified by another process a moment
    ago is then in the set."""
    return _tenant_map.certificate_hosts(fresh=fresh)


def request_host(request: HttpRequest) -> str:
    """The Host header without port, lower-case; raw so a bad host cannot raise here."""
    host = request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME", "")
    host = host.strip().lower()
    if host.startswith("["):  # IPv6 literal
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


def resolve_tenant(host: str) -> Tenant | None:
    """Return the tenant serving ``host`` (lower-case, without port), or None."""
    return _tenant_map.get(host)


def tenant_site(request: HttpRequest) -> Site | None:
    """The Wagtail Site serving ``request`` in the active tenant schema: what
    ``Site.find_for_request`` would return, without its query per request.

    Found by Wagtail's own lookup once per schema, hostname and port, and kept with the
    host map (a Site saved or deleted anywhere bumps its generation). Each request gets
    its own copy without the loaded root page, so that the page is read fresh."""
    key = (connection.schema_name, request_host(request), request.get_port())
    values = _tenant_map.site(key, lambda: find_site(request))
    if values is None:
        return None
    database = router.db_for_read(Site) or DEFAULT_DB_ALIAS
    return Site.from_db(database, _site_fields(), values)


@functools.cache
def _site_fields() -> tuple[str, ...]:
    return tuple(field.attname for field in Site._meta.concrete_fields)


def _site_values(site: Site | None) -> list | None:
    """What is kept and shared of a Site: its field values, JSON as they are."""
    if site is None:
        return None
    return [getattr(site, name) for name in _site_fields()]


def shared_content_types(alias: str, schema: str) -> dict[int, tuple[str, str]] | None:
    """Every content type of ``schema`` (the connection is in it), as another process
    shared them for this generation, or read in one query and shared; None when
    they cannot be shared (Redis unreachable). The rows behind
    ``tenants.adapters.django``'s per-schema cache."""
    generation = _tenant_map.generation()
    rows = read_shared(schema, generation, "content-types")
    if rows is MISSING:
        if generation is None:
            return None
        try:
            rows = list(
                ContentType.objects.db_manager(alias).values_list(
                    "id", "app_label", "model"
                )
            )
        except DatabaseError:
            return None  # Django's own query answers (or raises) as without sharing
        write_shared(schema, generation, "content-types", value=rows)
    return {pk: (app_label, model) for pk, app_label, model in rows}


def _kept_state_changed(sender, **kwargs) -> None:
    """A Site written, or migrations that may have created or renamed content types:
    every process drops what it kept, the shared entries included."""
    invalidate_tenant_map()


def connect_site_signals() -> None:
    """A Site saved or deleted (in any tenant) drops every process's cached Sites; so
    does the end of a migration (content types)."""
    from django.apps import apps
    from django.db.models.signals import post_delete, post_migrate, post_save

    for signal in (post_save, post_delete):
        signal.connect(
            _kept_state_changed, sender=Site, dispatch_uid=f"tenants.site.{signal}"
        )
    # Django sends post_migrate once per app at the end of every migrate (per schema
    # under django-tenants), after every rename: one app's is enough, and a fleet
    # migration moves the generation once per schema instead of once per app.
    post_migrate.connect(
        _kept_state_changed,
        sender=apps.get_app_config("contenttypes"),
        dispatch_uid="tenants.registry.migrated",
    )


def invalidate_tenant_map() -> None:
    """Make every process drop its host map (after tenant, domain or plan writes):
    at once, and again when the current transaction commits. A process that reloads
    between the two (its known hosts, a tenant) may still read the rows as they were
    before the commit; the second bump makes it read them again."""

    def bump() -> None:
        _tenant_map.clear()
        try:
            bump_generation(cache_redis(), generation_key())
        except Exception:
            logger.exception("tenant map: could not bump the generation in Redis")

    bump()
    if connection.in_atomic_block:
        transaction.on_commit(bump)
