"""Plans are changed once, on any pod, and reach every pod within a second.

Each pod keeps its own Plan rows (tenants point at them by foreign key), so a plan
saved on one pod is written through, once its transaction commits, to every other
pod's public schema by name, and that pod's host-map generation is bumped in its
Redis: its processes re-read their tenants with the new limits within
``CMS_TENANT_CACHE_CHECK_SECONDS``; the routers are woken to re-read their edge
limits (tenants.pods.edge_limits). A pod that cannot be reached is reported (the
command fails with its name) and gets the plan with ``pods sync-plans``.
"""

from __future__ import annotations

import logging

import psycopg
import redis
from django.db import transaction
from django.db.models.signals import post_save
from psycopg.types.json import Jsonb

from tenants.pods import directory, remote
from tenants.pods.directory import Pod, PodError, pod_database

logger = logging.getLogger(__name__)


def _plan_row(plan) -> dict:
    row = {}
    for field in plan._meta.concrete_fields:
        if field.primary_key:
            continue
        value = field.value_from_object(plan)
        row[field.column] = Jsonb(value) if isinstance(value, dict | list) else value
    return row


def _write_plan(pod: Pod, table: str, row: dict) -> None:
    columns = list(row)
    updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in columns if c != "name")
    sql = (
        f'INSERT INTO public."{table}" ('
        + ", ".join(f'"{c}"' for c in columns)
        + ") VALUES ("
        + ", ".join(["%s"] * len(columns))
        + f") ON CONFLICT (name) DO UPDATE SET {updates}"
    )
    with pod_database(pod.database_url) as conn:
        conn.execute(sql, [row[c] for c in columns])
    remote.bump_generation_on(pod)


def push_plan(plan) -> list[str]:
    """Write ``plan`` to every other pod; return the names of pods that failed."""
    table = plan._meta.db_table
    row = _plan_row(plan)
    failed = []
    for pod in directory.pods_list():
        if pod.name == directory.local_pod():
            continue
        try:
            _write_plan(pod, table, row)
        except (psycopg.Error, redis.RedisError):
            logger.exception(
                "plan %s could not be written to pod %s", plan.name, pod.name
            )
            failed.append(pod.name)
    tell_routers(f"plan {plan.name}")
    return failed


def tell_routers(change: str) -> None:
    """Wake the routers so that their edge limits follow a change of plans (a plan
    updated, a tenant moved to another plan) now, not at their next resync."""
    if not directory.enabled():
        return
    try:
        directory.notify_routers("plans")
    except PodError:
        logger.warning("the routers were not told of %s; they resync", change)


def _plan_saved(sender, instance, **kwargs) -> None:
    if not directory.enabled():
        return

    def push() -> None:
        failed = push_plan(instance)
        if failed:
            raise PodError(
                f"Plan {instance.name!r} was saved here but not on pod(s) "
                f"{', '.join(failed)}; run `manage.py pods sync-plans` when they are "
                "back."
            )

    transaction.on_commit(push, robust=False)


def sync_plans() -> list[str]:
    """Write every plan of this pod to every other pod (after a pod was down)."""
    from tenants.models import Plan

    failed: set[str] = set()
    for plan in Plan.objects.all():
        failed.update(push_plan(plan))
    return sorted(failed)


def connect_plan_signals() -> None:
    from tenants.models import Plan

    post_save.connect(_plan_saved, sender=Plan, dispatch_uid="pods-push-plan")
