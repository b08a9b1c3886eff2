"""Migrating every tenant: find the ones behind, migrate them in parallel, summarize.

The template schema is migrated first. A tenant is behind when the set of migrations
recorded in its ``django_migrations`` differs from the template's; that is checked
for a hundred schemas per query, so a no-op run over a large fleet takes seconds
instead of one ``migrate`` per tenant. A run that fails part-way can simply be run
again: finished tenants are no longer behind and are skipped.
"""

import multiprocessing
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.core.management import call_command
from django.db import connection, connections

from tenants.models import Tenant
from tenants.provisioning.creation import ensure_template_schema, template_schema_name

BATCH = 100


@dataclass
class FleetResult:
    total: int = 0
    up_to_date: int = 0
    migrated: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _fingerprints(schemas: list[str]) -> dict[str, str | None]:
    """md5 of each schema's recorded migrations (None when it has no such table)."""
    result: dict[str, str | None] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema FROM information_schema.tables "
            "WHERE table_name = 'django_migrations' AND table_schema = ANY(%s)",
            [schemas],
        )
        present = {row[0] for row in cursor.fetchall()}
        for schema in schemas:
            if schema not in present:
                result[schema] = None
        candidates = [s for s in schemas if s in present]
        for start in range(0, len(candidates), BATCH):
            batch = candidates[start : start + BATCH]
            union = " UNION ALL ".join(
                f"SELECT %s, md5(string_agg(app || '.' || name, ',' "
                f"ORDER BY app, name)) FROM {_quote(schema)}.django_migrations"
                for schema in batch
            )
            cursor.execute(union, batch)
            result.update(dict(cursor.fetchall()))
    return result


def schemas_behind(schemas: list[str]) -> list[str]:
    reference = _fingerprints([template_schema_name()])[template_schema_name()]
    fingerprints = _fingerprints(schemas)
    return [s for s in schemas if fingerprints[s] != reference or reference is None]


def _migrate_one(schema: str) -> tuple[str, str | None]:
    try:
        call_command(
            "migrate_schemas",
            schema_name=schema,
            tenant=True,
            interactive=False,
            verbosity=0,
        )
    except Exception as exc:  # noqa: BLE001 - reported per tenant, the run goes on
        return schema, f"{type(exc).__name__}: {exc}"
    finally:
        connection.set_schema_to_public()
    return schema, None


class ProgressBar:
    """A one-line progress bar on a terminal, a line per tenth otherwise."""

    def __init__(self, total: int, label: str, stream=None) -> None:
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.done = 0
        self.failed = 0
        self._last_tenth = -1
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def advance(self, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        width = 30
        filled = int(width * self.done / max(1, self.total))
        line = (
            f"{self.label} [{'#' * filled}{'.' * (width - filled)}] "
            f"{self.done}/{self.total} failed={self.failed}"
        )
        if self._tty:
            end = "\n" if self.done == self.total else ""
            self.stream.write("\r" + line + end)
            self.stream.flush()
        elif (tenth := self.done * 10 // max(1, self.total)) != self._last_tenth:
            self._last_tenth = tenth
            self.stream.write(line + "\n")


def migrate_fleet(
    *,
    parallel: int = 2,
    schemas: Iterable[str] | None = None,
    progress: Callable[[int], ProgressBar] | None = None,
) -> FleetResult:
    """Bring the template and every tenant (or ``schemas``) up to date."""
    started = time.monotonic()
    ensure_template_schema()
    if schemas is None:
        schemas = Tenant.objects.exclude(status=Tenant.Status.TEMPLATE).values_list(
            "schema_name", flat=True
        )
    schemas = sorted(schemas)
    behind = schemas_behind(schemas)
    result = FleetResult(total=len(schemas), up_to_date=len(schemas) - len(behind))
    bar = progress(len(behind)) if progress and behind else None
    if parallel > 1 and len(behind) > 1:
        connections.close_all()  # forked workers must not share our sockets
        context = multiprocessing.get_context("fork")
        with context.Pool(min(parallel, len(behind))) as pool:
            outcomes = pool.imap_unordered(_migrate_one, behind)
            for schema, error in outcomes:
                _record(result, schema, error, bar)
    else:
        for schema in behind:
            _, error = _migrate_one(schema)
            _record(result, schema, error, bar)
    result.seconds = time.monotonic() - started
    return result


def _record(
    result: FleetResult, schema: str, error: str | None, bar: ProgressBar | None
) -> None:
    if error is None:
        result.migrated.append(schema)
    else:
        result.failed[schema] = error
    if bar is not None:
        bar.advance(error is None)
