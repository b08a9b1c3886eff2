"""Registering a pod with the directory, adopting the tenants it already holds.

A running single-pod installation becomes the first pod this way, and a pod
restored from a backup is registered again: its tenants and host names are claimed
in one directory transaction, so a slug or a host another pod holds refuses the
whole registration and nothing is written.
"""

from __future__ import annotations

import psycopg
import redis

from tenants.errors import DomainTaken, TenantExists
from tenants.pods import directory
from tenants.pods.directory import Pod, PodError, pod_database


def _pod_contents(database_url: str) -> tuple[list[str], list[tuple[str, str]]]:
    try:
        with pod_database(database_url, connect_timeout=5) as conn:
            slugs = [
                row[0]
                for row in conn.execute(
                    "SELECT schema_name FROM public.tenants_tenant "
                    "WHERE status <> 'template' AND schema_name <> 'public' "
                    "ORDER BY schema_name"
                )
            ]
            hosts = conn.execute(
                "SELECT d.domain, t.schema_name FROM public.tenants_domain d "
                "JOIN public.tenants_tenant t ON t.id = d.tenant_id "
                "WHERE t.status <> 'template' ORDER BY d.domain"
            ).fetchall()
    except psycopg.errors.UndefinedTable as exc:
        raise PodError(
            "The pod's database is not migrated (run `manage.py migrate` with its "
            "DATABASE_URL first)."
        ) from exc
    except psycopg.Error as exc:
        raise PodError(f"The pod's database cannot be reached: {exc}") from exc
    return slugs, [(host, slug) for host, slug in hosts]


def _check_redis(redis_url: str) -> None:
    try:
        redis.Redis.from_url(redis_url, socket_timeout=3).ping()
    except redis.RedisError as exc:
        raise PodError(f"The pod's Redis cannot be reached: {exc}") from exc


def pod_register(
    *, name: str, database_url: str, redis_url: str, web: str, media_root: str = ""
) -> tuple[Pod, int]:
    """Add the pod; return it with the number of tenants adopted from it."""
    directory.validate_pod_name(name)
    slugs, hosts = _pod_contents(database_url)
    _check_redis(redis_url)
    directory.validate_web(web)
    with directory.connect() as conn, conn.transaction():
        added = conn.execute(
            "INSERT INTO cms_directory.pods "
            "(name, database_url, redis_url, web, media_root) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING "
            "RETURNING name",
            [name, database_url, redis_url, web, media_root],
        ).fetchone()
        if added is None:
            raise PodError(f"A pod named {name!r} is already registered.")
        for slug in slugs:
            owner = directory.tenant_owner(conn, slug, name)
            if owner != name:
                raise TenantExists(
                    f"Pod {name!r} holds tenant {slug!r}, which already lives on pod "
                    f"{owner!r}; nothing was registered."
                )
        for host, slug in hosts:
            owner = directory.hostname_owner(conn, host, slug)
            if owner != slug:
                raise DomainTaken(
                    f"Pod {name!r} serves {host!r} for tenant {slug!r}, but the "
                    f"directory gives it to {owner!r}; nothing was registered."
                )
    return directory.pod_get(name), len(slugs)
