"""Lanes: families of background jobs that share nothing but the fair order.

A lane is a fair queue (``tenants.jobs.fair_queue``) with a Celery queue for its
tokens and a per-tenant in-flight cap of its own. Publishing is CPU- and database-bound
and runs on the prefork pool, capped by the plan's ``publish_concurrency``. A webhook
delivery mostly waits on someone else's server (up to its timeout): on the publishing
pool one tenant's slow endpoint held every process it was allowed, and another
tenant's delivery (and publishes) waited behind it. Deliveries therefore run in a lane
of their own, on a worker with many threads, capped per tenant by the plan's
``webhook_concurrency``; a tenant's slow endpoint holds at most that many threads and
never a publishing process.

Every job kind names its lane (``tenants.jobs.kinds``); the app that owns a lane
registers it from its ``AppConfig.ready``, as it registers its kinds.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from tenants.errors import TenantError
from tenants.models import Tenant

PUBLISHING = "publishing"


class UnknownLane(TenantError):
    """A job kind names a lane nobody registered."""


@dataclass(frozen=True)
class Lane:
    """``queue()`` names both the Celery queue of the lane's tokens and its fair
    queue (read at call time: tests and benchmarks set their own); ``cap(tenant)`` is
    the tenant's jobs of this lane running at once."""

    name: str
    queue: Callable[[], str]
    cap: Callable[[Tenant], int]


def _publishing_queue() -> str:
    return settings.CMS_JOBS_QUEUE


def _publishing_cap(tenant: Tenant) -> int:
    return tenant.plan.publish_concurrency


_LANES: dict[str, Lane] = {
    PUBLISHING: Lane(PUBLISHING, queue=_publishing_queue, cap=_publishing_cap)
}


def register_lane(
    name: str, *, queue: Callable[[], str], cap: Callable[[Tenant], int]
) -> Lane:
    """Register (or replace, on a reload) a lane."""
    lane = Lane(name, queue=queue, cap=cap)
    _LANES[name] = lane
    return lane


def get_lane(name: str) -> Lane:
    try:
        return _LANES[name]
    except KeyError:
        raise UnknownLane(f"Unknown job lane {name!r}.") from None


def all_lanes() -> list[Lane]:
    return list(_LANES.values())
