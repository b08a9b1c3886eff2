"""The directory: the global truth of a platform with several pods.

A small PostgreSQL database of its own (``CMS_DIRECTORY_URL``) holding which pods
exist, which pod each tenant lives on, and which tenant owns each host name. Slugs
and host names are primary keys here, so they are unique across every pod however
they are created (CLI, admin, import, clone): each pod claims a name in the directory
before it writes its own row (tenants.pods.claims). Each pod's public schema keeps the
rows django-tenants needs; the directory is what the router and the commands trust.

Plain SQL over psycopg rather than Django models: the directory is not a tenant
database, has no schemas, and must be reachable from a process whose Django
connection points at one pod. Its schema is created on first use (idempotent DDL
under an advisory lock) and every change NOTIFYs ``cms_directory``, which the router
(``manage.py pods router``) listens to.

With ``CMS_DIRECTORY_URL`` unset the platform is a single pod and nothing here runs.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from django.conf import settings

from tenants.db_backend.timeouts import bounded_transaction
from tenants.errors import DomainTaken, TenantError, TenantExists, TenantNotFound

CHANNEL = "cms_directory"
# a small read or write on a pod's own database (placement, plans, registration, the
# router's plan sync) gives up after this: a migration's lock there must not hang an
# operator's command or the router
POD_STATEMENT_TIMEOUT_MS = 5000
POD_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
# One advisory lock key for the DDL: two processes starting at once must not race
# CREATE TABLE IF NOT EXISTS (it is not concurrency-safe in PostgreSQL).
_DDL_LOCK = 7_364_101

DDL = f"""
CREATE SCHEMA IF NOT EXISTS cms_directory;
CREATE TABLE IF NOT EXISTS cms_directory.pods (
    name text PRIMARY KEY,
    database_url text NOT NULL,
    redis_url text NOT NULL,
    web text NOT NULL,
    state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'draining')),
    added_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS cms_directory.tenants (
    slug text PRIMARY KEY,
    pod text NOT NULL REFERENCES cms_directory.pods (name),
    state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'moving')),
    placed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS cms_directory.domains (
    hostname text PRIMARY KEY,
    slug text NOT NULL REFERENCES cms_directory.tenants (slug) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS domains_slug ON cms_directory.domains (slug);
ALTER TABLE cms_directory.pods ADD COLUMN IF NOT EXISTS media_root text NOT NULL
    DEFAULT '';
CREATE TABLE IF NOT EXISTS cms_directory.moves (
    id bigserial PRIMARY KEY,
    slug text NOT NULL,
    source text NOT NULL,
    target text NOT NULL,
    step text NOT NULL,
    moved_schema text NOT NULL DEFAULT '',
    drop_after timestamptz,
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- one move under way per tenant; finished ones stay until their copy is dropped
CREATE UNIQUE INDEX IF NOT EXISTS moves_open ON cms_directory.moves (slug)
    WHERE step <> 'done';
-- each running router and the directory state its map was last synced with (no
-- notify trigger: a router's own heartbeat must not wake the routers)
CREATE TABLE IF NOT EXISTS cms_directory.routers (
    name text PRIMARY KEY,
    synced_at timestamptz NOT NULL
);
CREATE OR REPLACE FUNCTION cms_directory.notify() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME);
    RETURN NULL;
END $$;
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['pods', 'tenants', 'domains'] LOOP
        IF NOT EXISTS (
            SELECT 1 FROM pg_trigger
            WHERE tgname = 'notify_' || t AND NOT tgisinternal
        ) THEN
            EXECUTE format(
                'CREATE TRIGGER notify_%1$s AFTER INSERT OR UPDATE OR DELETE '
                'ON cms_directory.%1$s FOR EACH STATEMENT '
                'EXECUTE FUNCTION cms_directory.notify()', t);
        END IF;
    END LOOP;
END $$;
"""


class PodError(TenantError):
    """A pod operation that cannot be done as asked (the message says why)."""


@dataclass(frozen=True)
class Pod:
    name: str
    database_url: str
    redis_url: str
    web: str
    state: str
    media_root: str = ""
    tenants: int = 0


@contextmanager
def pod_database(
    database_url: str, *, connect_timeout: int = 3
) -> Iterator[psycopg.Connection]:
    """A connection of its own to a pod's database with one transaction whose
    statements the server cancels after ``POD_STATEMENT_TIMEOUT_MS``
    (``psycopg.errors.QueryCanceled``, a ``psycopg.Error``): straight to PostgreSQL or
    through the pod's pooler alike (tenants.db_backend.timeouts). Not for a move's
    copies, which take as long as the tenant's data."""
    with psycopg.connect(
        database_url, autocommit=True, connect_timeout=connect_timeout
    ) as conn:
        with bounded_transaction(conn, POD_STATEMENT_TIMEOUT_MS):
            yield conn


def enabled() -> bool:
    """Whether this installation has a directory (several pods) at all."""
    return bool(getattr(settings, "CMS_DIRECTORY_URL", ""))


def local_pod() -> str:
    """The pod this process belongs to (``CMS_POD``)."""
    return getattr(settings, "CMS_POD", "") or ""


_ready: set[str] = set()
_ready_lock = threading.Lock()


@contextmanager
def connect(url: str | None = None) -> Iterator[psycopg.Connection]:
    """A connection to the directory, its schema created on first use."""
    url = url or settings.CMS_DIRECTORY_URL
    if not url:
        raise PodError("CMS_DIRECTORY_URL is not set: this platform has one pod.")
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise PodError(f"The directory database cannot be reached: {exc}") from exc
    try:
        if url not in _ready:
            with _ready_lock, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [_DDL_LOCK])
                conn.execute(DDL)
            _ready.add(url)
        yield conn
    finally:
        conn.close()


def validate_pod_name(name: str) -> str:
    if not POD_NAME.fullmatch(name or ""):
        raise PodError(
            f"{name!r} is not a valid pod name: lower-case letters, digits and "
            "hyphens, starting with a letter, at most 31 characters."
        )
    return name


# --- pods -------------------------------------------------------------------------


def validate_web(web: str) -> str:
    if not re.match(r"^[\w.-]+:\d{1,5}$", web or ""):
        raise PodError(f"--web must be host:port of the pod's pool, not {web!r}.")
    return web


def pod_get(name: str) -> Pod:
    for pod in pods_list():
        if pod.name == name:
            return pod
    raise PodError(f"No pod named {name!r} (see `manage.py pods list`).")


def pods_list() -> list[Pod]:
    with connect() as conn:
        rows = conn.execute(
            "SELECT p.name, p.database_url, p.redis_url, p.web, p.state, "
            "p.media_root, count(t.slug) FROM cms_directory.pods p "
            "LEFT JOIN cms_directory.tenants t ON t.pod = p.name "
            "GROUP BY p.name ORDER BY p.name"
        ).fetchall()
    return [Pod(*row) for row in rows]


def pod_set_state(name: str, state: str) -> None:
    with connect() as conn:
        updated = conn.execute(
            "UPDATE cms_directory.pods SET state = %s WHERE name = %s",
            [state, name],
        ).rowcount
    if not updated:
        raise PodError(f"No pod named {name!r} (see `manage.py pods list`).")


# --- tenants and host names -----------------------------------------------------


def tenant_owner(conn: psycopg.Connection, slug: str, pod: str) -> str:
    """Claim ``slug`` for ``pod`` on ``conn`` unless held; return the pod holding it
    (the one place both a creation's claim and a pod's adoption write it)."""
    return conn.execute(
        "INSERT INTO cms_directory.tenants (slug, pod) VALUES (%s, %s) "
        "ON CONFLICT (slug) DO UPDATE SET slug = EXCLUDED.slug RETURNING pod",
        [slug, pod],
    ).fetchone()[0]


def hostname_owner(conn: psycopg.Connection, hostname: str, slug: str) -> str:
    """Claim ``hostname`` for ``slug`` on ``conn`` unless held; return its owner."""
    return conn.execute(
        "INSERT INTO cms_directory.domains (hostname, slug) VALUES (%s, %s) "
        "ON CONFLICT (hostname) DO UPDATE SET hostname = EXCLUDED.hostname "
        "RETURNING slug",
        [hostname, slug],
    ).fetchone()[0]


def claim_tenant(slug: str, pod: str) -> None:
    """Record that ``slug`` lives on ``pod``; a slug another pod holds is refused.
    Claiming again on the same pod is a no-op (a creation retried after a failure)."""
    with connect() as conn:
        owner = tenant_owner(conn, slug, pod)
    if owner != pod:
        raise TenantExists(
            f"A tenant with the slug {slug!r} already exists on pod {owner!r}."
        )


def release_tenant(slug: str, pod: str) -> None:
    """Forget ``slug`` (and its host names) if it lives on ``pod``."""
    with connect() as conn:
        conn.execute(
            "DELETE FROM cms_directory.tenants WHERE slug = %s AND pod = %s",
            [slug, pod],
        )


def claim_hostnames(slug: str, hostnames: list[str]) -> None:
    """Record ``hostnames`` as ``slug``'s, all or none; one another tenant owns (on
    any pod) is refused with the owner's name left out (it is another customer)."""
    with connect() as conn, conn.transaction():
        for hostname in hostnames:
            if hostname_owner(conn, hostname, slug) != slug:
                raise DomainTaken(
                    f"The domain {hostname!r} already belongs to a tenant."
                )


def release_hostname(hostname: str, pod: str) -> None:
    """Forget ``hostname`` if a tenant of ``pod`` owns it."""
    with connect() as conn:
        conn.execute(
            "DELETE FROM cms_directory.domains d USING cms_directory.tenants t "
            "WHERE d.slug = t.slug AND t.pod = %s AND d.hostname = %s",
            [pod, hostname],
        )


def check_new_tenant(slug: str, hostnames: list[str], pod: str) -> None:
    """Refuse, before anything is written, a slug or host name held elsewhere (the
    claims made while saving decide races; this gives the usual case its message
    without a failed transaction)."""
    with connect() as conn:
        owner = conn.execute(
            "SELECT pod FROM cms_directory.tenants WHERE slug = %s", [slug]
        ).fetchone()
        if owner and owner[0] != pod:
            raise TenantExists(
                f"A tenant with the slug {slug!r} already exists on pod {owner[0]!r}."
            )
        taken = conn.execute(
            "SELECT hostname FROM cms_directory.domains "
            "WHERE hostname = ANY(%s) AND slug <> %s ORDER BY hostname",
            [hostnames, slug],
        ).fetchone()
    if taken:
        raise DomainTaken(f"The domain {taken[0]!r} already belongs to a tenant.")


def tenant_pod(slug: str) -> str:
    with connect() as conn:
        row = conn.execute(
            "SELECT pod FROM cms_directory.tenants WHERE slug = %s", [slug]
        ).fetchone()
    if row is None:
        raise TenantNotFound(f"No tenant with the slug {slug!r} on any pod.")
    return row[0]


def host_map() -> dict[str, str]:
    """Every host name with the pod serving it: what the router routes by."""
    return host_map_as_of()[0]


def host_map_as_of() -> tuple[dict[str, str], dt.datetime]:
    """The host map and the directory time it is as of: every change committed
    before that time is in it (the rows are read in a transaction begun then)."""
    with connect() as conn, conn.transaction():
        as_of = conn.execute("SELECT now()").fetchone()[0]
        rows = conn.execute(
            "SELECT d.hostname, t.pod FROM cms_directory.domains d "
            "JOIN cms_directory.tenants t USING (slug)"
        ).fetchall()
    return dict(rows), as_of


# --- routers' acknowledgements ----------------------------------------------------
# A router records the time its map is as of after every sync (at least every few
# seconds: it is its heartbeat too). A move waits until every live router has
# synced past the switch before the source lets the tenant go, so no router sends
# a request to a pod that no longer knows its host.

# A router that has not synced for this long is taken for stopped.
ROUTER_LIVE_SECONDS = 15.0


def notify_routers(reason: str) -> None:
    """Wake every router to sync now, for a change the directory's tables do not
    hold (a plan changed on the pods: the routers' edge limits follow it)."""
    with connect() as conn:
        conn.execute("SELECT pg_notify(%s, %s)", [CHANNEL, reason])


def router_synced(name: str, as_of: dt.datetime) -> None:
    """Record that router ``name`` routes by the directory as of ``as_of``."""
    with connect() as conn:
        conn.execute(
            "INSERT INTO cms_directory.routers (name, synced_at) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET synced_at = "
            "greatest(cms_directory.routers.synced_at, EXCLUDED.synced_at)",
            [name, as_of],
        )


def router_stopped(name: str) -> None:
    """A router shut down cleanly: no move waits for it."""
    with connect() as conn:
        conn.execute("DELETE FROM cms_directory.routers WHERE name = %s", [name])


def wait_for_routers(since: dt.datetime, *, timeout: float) -> list[str]:
    """Wait until every live router's map is as of ``since`` or later; the names of
    those still behind when ``timeout`` runs out (none: every router switched)."""
    deadline = time.monotonic() + timeout
    with connect() as conn:  # autocommit: each poll reads the routers anew
        while True:
            behind = [
                row[0]
                for row in conn.execute(
                    "SELECT name FROM cms_directory.routers WHERE synced_at < %s "
                    "AND synced_at > now() - make_interval(secs => %s) ORDER BY name",
                    [since, ROUTER_LIVE_SECONDS],
                )
            ]
            if not behind or time.monotonic() >= deadline:
                return behind
            time.sleep(0.02)
