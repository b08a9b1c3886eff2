"""Every pod's tenants in one list (``tenants list`` on an installation with pods).

A tenant's details (plan, status, domains) live in its pod's public schema, so each
other pod is asked for its own list (``tenants list --json`` run there with its URLs,
as every forwarded command is); a pod that cannot answer is named, and the others'
tenants are still listed.
"""

import json
from dataclasses import dataclass, field

from tenants.pods import directory, remote
from tenants.registry.selectors import tenant_as_dict, tenant_list


@dataclass
class Listing:
    rows: list[dict] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)


def _local_rows() -> list[dict]:
    return [tenant_as_dict(tenant) for tenant in tenant_list()]


def _remote_rows(pod: str) -> list[dict]:
    argv = ["tenants", "list", "--json", "--pod", pod]
    return json.loads(remote.run_on_pod_captured(pod, argv))


def list_tenants(*, pod: str | None = None) -> Listing:
    """This pod's tenants without a directory; with one, every pod's (or ``pod``'s),
    each row naming its pod."""
    if not directory.enabled():
        return Listing(rows=_local_rows())
    names = (
        [directory.pod_get(pod).name]
        if pod
        else [each.name for each in directory.pods_list()]
    )
    listing = Listing()
    for name in names:
        local = name == directory.local_pod()
        try:
            rows = _local_rows() if local else _remote_rows(name)
        except directory.PodError as exc:
            listing.unreachable.append(str(exc))
            continue
        listing.rows += [{**row, "pod": name} for row in rows]
    return listing
