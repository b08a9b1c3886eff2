"""Provisioning many tenants from a CSV file, carrying on past bad rows."""

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tenants.audit.trail import Actor
from tenants.errors import TenantError
from tenants.provisioning.creation import ProvisionedTenant, tenant_create

CSV_COLUMNS = ("slug", "name", "domain", "plan", "admin_email")


@dataclass
class BulkResult:
    created: list[ProvisionedTenant] = field(default_factory=list)
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # line, slug, why


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of the CSV with their line numbers; the header names the columns."""
    try:
        handle = Path(path).open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise TenantError(f"Cannot read {path}: {exc.strerror}.") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in CSV_COLUMNS[:4] if c not in (reader.fieldnames or [])]
        if missing:
            raise TenantError(
                f"{path}: the header must name the columns {', '.join(CSV_COLUMNS)} "
                f"(missing: {', '.join(missing)})."
            )
        for row in reader:
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}


def tenants_create_from_csv(
    path: Path,
    *,
    on_row: Callable[[bool], None] | None = None,
    actor: Actor | None = None,
) -> BulkResult:
    """Create a tenant per row; a bad row is recorded and the rest go on. Several
    domains in one row are separated by spaces or semicolons."""
    result = BulkResult()
    rows = list(read_rows(path))
    for line, row in rows:
        domains = [d for d in row["domain"].replace(";", " ").split() if d]
        try:
            created = tenant_create(
                slug=row["slug"],
                name=row["name"],
                domains=domains,
                plan=row["plan"],
                admin_email=row.get("admin_email") or None,
                actor=actor,
            )
        except TenantError as exc:
            result.failed.append((line, row["slug"], str(exc)))
            ok = False
        else:
            result.created.append(created)
            ok = True
        if on_row is not None:
            on_row(ok)
    return result


def count_rows(path: Path) -> int:
    return sum(1 for _ in read_rows(path))
