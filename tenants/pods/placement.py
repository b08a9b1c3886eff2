"""Where a new tenant goes, and what each pod carries.

The least-loaded active pod, load being the pod's share of all tenants plus its share
of the last week's metered requests (public reads, API reads and writes, from its
UsageDay rows): a pod full of idle sites and a pod with a few busy ones both count
as loaded. A pod being drained (``pods drain``) takes no new tenants.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from tenants.pods import directory
from tenants.pods.directory import Pod, PodError, pod_database

USAGE_DAYS = 7


@dataclass(frozen=True)
class PodLoad:
    pod: Pod
    tenants: int
    requests_7d: int | None  # None: the pod's database did not answer

    @property
    def healthy(self) -> bool:
        return self.requests_7d is not None


def pod_requests(pod: Pod) -> int | None:
    """Metered requests of the pod's tenants over the last ``USAGE_DAYS`` days."""
    try:
        with pod_database(pod.database_url) as conn:
            return int(
                conn.execute(
                    "SELECT coalesce(sum(public_reads + api_reads + api_writes), 0) "
                    "FROM public.tenants_usageday "
                    "WHERE day >= current_date - %s",
                    [USAGE_DAYS],
                ).fetchone()[0]
            )
    except psycopg.Error:
        return None


def pod_loads() -> list[PodLoad]:
    return [
        PodLoad(pod=pod, tenants=pod.tenants, requests_7d=pod_requests(pod))
        for pod in directory.pods_list()
    ]


def choose_pod(loads: list[PodLoad] | None = None) -> str:
    """The pod a new tenant is placed on."""
    loads = pod_loads() if loads is None else loads
    candidates = [load for load in loads if load.pod.state == "active" and load.healthy]
    if not candidates:
        raise PodError(
            "No pod can take a new tenant: none is registered, active and reachable "
            "(see `manage.py pods list`)."
        )
    total_tenants = sum(load.tenants for load in candidates) or 1
    total_requests = sum(load.requests_7d for load in candidates) or 1

    def score(load: PodLoad) -> tuple[float, str]:
        return (
            load.tenants / total_tenants + load.requests_7d / total_requests,
            load.pod.name,
        )

    return min(candidates, key=score).pod.name
