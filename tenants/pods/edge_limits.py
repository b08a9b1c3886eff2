"""Each tenant's edge limit, from its plan: what the router refuses before a pod.

The pod enforces a plan exactly (tenants.tariffs), but every request it refuses has
already cost a worker. Past a multiple of the plan, a flood is refused at the router
instead (tenants.pods.router): ``CMS_EDGE_LIMIT_FACTOR`` x what the plan allows a
minute, per 10-s window, of each kind apart: pages (its public reads) and the content
API (its API reads and writes), and the pages of any one client (its public reads per
client). Between the plan and that multiple the pod still
answers, with its own 429s and their metering.

Plans and their tenants live in each pod's database (the directory knows hosts and
pods, not plans): the router reads every pod's verified domains with their plan's
limits at each sync (at least every ``tenants.pods.routing.RESYNC_SECONDS``), so a
plan change reaches the edge within that. A pod that cannot be read keeps the limits
last read for its hosts. May import: ``tenants.pods.directory``,
``tenants.pods.router`` (the window its stick table counts over).
"""

from __future__ import annotations

import logging
import math

import psycopg
from django.conf import settings

from tenants.pods.directory import Pod, pod_database
from tenants.pods.router import EDGE_WINDOW_SECONDS, EdgeLimit

logger = logging.getLogger(__name__)

QUERY = """
SELECT lower(d.domain), t.schema_name, p.public_reads_per_minute,
       p.api_reads_per_minute + p.api_writes_per_minute,
       p.public_reads_per_client_per_minute
FROM public.tenants_domain d
JOIN public.tenants_tenant t ON t.id = d.tenant_id
JOIN public.tenants_plan p ON p.id = t.plan_id
WHERE d.status = 'verified'
"""


def factor() -> float:
    """The edge limit as a multiple of the plan (0: no edge limit)."""
    return float(getattr(settings, "CMS_EDGE_LIMIT_FACTOR", 2.0))


def per_window(allowed_per_minute: int, multiple: float) -> int:
    """Requests per window the edge lets through of a kind the plan allows
    ``allowed_per_minute`` of."""
    return max(1, math.ceil(multiple * allowed_per_minute * EDGE_WINDOW_SECONDS / 60))


def pod_limits(pod: Pod, multiple: float) -> dict[str, EdgeLimit]:
    """host -> its edge budgets for the verified domains on ``pod``."""
    with pod_database(pod.database_url) as conn:
        rows = conn.execute(QUERY).fetchall()
    return {
        host: EdgeLimit(
            pages=per_window(pages, multiple),
            api=per_window(api, multiple),
            client=per_window(client, multiple),
            tenant=tenant,
        )
        for host, tenant, pages, api, client in rows
    }


def edge_limits(
    pods: list[Pod],
    host_pods: dict[str, str],
    previous: dict[str, EdgeLimit],
) -> dict[str, EdgeLimit]:
    """Every routed host's edge limit. ``host_pods`` is the directory's host map: a
    host counts only on the pod it is routed to (a moved tenant's old rows are gone
    from its source, but a half-done move must not count twice). A pod that cannot
    be read keeps its hosts' ``previous`` limits."""
    multiple = factor()
    if multiple <= 0:
        return {}
    limits: dict[str, EdgeLimit] = {}
    for pod in pods:
        try:
            found = pod_limits(pod, multiple)
        except psycopg.Error as exc:
            logger.warning("edge limits: pod %s cannot be read (%s)", pod.name, exc)
            found = previous
        limits.update(
            (host, limit)
            for host, limit in found.items()
            if host_pods.get(host) == pod.name
        )
    return limits
