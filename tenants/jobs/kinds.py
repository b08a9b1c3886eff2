"""The kinds of background job the fair queue may run, filled by the apps that own
them.

The queue orders jobs by tenant and knows nothing of what a job does; the app that
stores and runs jobs (``content``) registers each kind here from its
``AppConfig.ready``, so the platform never imports the app (``tenants`` never imports
``content``) and no module needs a function-level import to find an executor.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenants.errors import TenantError
from tenants.jobs.lanes import PUBLISHING


class UnknownJobKind(TenantError):
    """A job names a kind nobody registered (a typo, or an app not installed)."""


@dataclass(frozen=True)
class JobKind:
    """What a worker runs for a job, and whether queuing it spends the tenant's
    hourly allowance (the platform's own work, such as the scheduled sweep or
    Wagtail's index updates, does not), and the lane it runs in
    (``tenants.jobs.lanes``)."""

    name: str
    run: Callable[[Any], Any]
    counts_against_plan: bool = True
    # shown in the editors' job list; index updates and the like are not
    listed: bool = True
    lane: str = PUBLISHING


_KINDS: dict[str, JobKind] = {}


def register_job_kind(
    name: str,
    *,
    run: Callable[[Any], Any],
    counts_against_plan: bool = True,
    listed: bool = True,
    lane: str = PUBLISHING,
) -> JobKind:
    """Register (or replace, on a reload) the executor of a kind of job. ``run(job)``
    must be idempotent: a job whose worker died runs again."""
    kind = JobKind(
        name=name,
        run=run,
        counts_against_plan=counts_against_plan,
        listed=listed,
        lane=lane,
    )
    _KINDS[name] = kind
    return kind


def get_job_kind(name: str) -> JobKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownJobKind(f"Unknown job kind {name!r}.") from None


def unlisted_kinds() -> list[str]:
    """Kinds the editors' job list leaves out."""
    return [name for name, kind in _KINDS.items() if not kind.listed]
