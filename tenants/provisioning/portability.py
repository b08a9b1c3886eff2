"""Exporting a tenant to one archive and restoring it, under its own or a new slug.

The archive (``.tar.gz``) holds ``manifest.json`` (tenant, domains, plan, migration
state, tables with their columns, sequence values), one ``data/<table>.copy`` file per
table in PostgreSQL's COPY text format, and the tenant's uploads under ``media/``.

Data is copied table by table rather than with ``pg_dump``: a ``pg_dump`` file names
its schema everywhere, so it can only be restored under the same name, whereas an
import here clones the template schema under the new slug and loads the rows into it.
Django's foreign keys are deferrable, so load order does not matter inside the one
transaction that makes the import all or nothing.
"""

import io
import json
import secrets
import tarfile
from dataclasses import dataclass
from pathlib import Path

from django.core.files.storage import Storage
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from tenants.audit.trail import Actor, record_audit
from tenants.errors import TenantError
from tenants.media import trees
from tenants.models import Domain, Tenant
from tenants.pods import claims
from tenants.provisioning.cloning import clone_template
from tenants.provisioning.creation import (
    ensure_template_schema,
    template_schema_name,
    tenant_delete,
    validate_new_tenant,
)
from tenants.registry.resolution import invalidate_tenant_map
from tenants.registry.selectors import tenant_get
from tenants.tariffs.quotas import check_imported_uploads

FORMAT_VERSION = 1


class ArchiveError(TenantError):
    pass


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    tables: int
    rows: int
    media_files: int


# Left out of every archive: live sessions would let whoever holds the archive (or
# the installation it is imported into) act as the tenant's signed-in users.
# Password hashes stay, so users can sign in after an import; the archive is
# written owner-only (0600) for that reason.
UNEXPORTED_TABLES = frozenset({"django_session"})


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _tables(cursor, schema: str) -> dict[str, list[str]]:
    cursor.execute(
        """
        SELECT c.relname, a.attname
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid
        WHERE n.nspname = %s AND c.relkind IN ('r', 'p')
          AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
        ORDER BY c.relname, a.attnum
        """,
        [schema],
    )
    tables: dict[str, list[str]] = {}
    for table, column in cursor.fetchall():
        tables.setdefault(table, []).append(column)
    return tables


def _sequences(cursor, schema: str) -> dict[str, int | None]:
    cursor.execute(
        "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = %s",
        [schema],
    )
    return dict(cursor.fetchall())


def _migrations(cursor, schema: str) -> list[list[str]]:
    cursor.execute(
        f"SELECT app, name FROM {_quote(schema)}.django_migrations ORDER BY app, name"
    )
    return [list(row) for row in cursor.fetchall()]


def _add_bytes(archive: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mtime = int(timezone.now().timestamp())
    archive.addfile(info, io.BytesIO(payload))


def tenant_export(
    *, slug: str, output: Path, actor: Actor | None = None, audit: bool = True
) -> ExportSummary:
    """Write the tenant's data and media to ``output`` (a consistent snapshot).

    An export takes a tenant's data out, so it is audited; callers that record the
    export themselves (a backup) pass ``audit=False``."""
    tenant = tenant_get(slug)
    output = Path(output)
    if output.parent and not output.parent.exists():
        raise ArchiveError(f"The folder {output.parent} does not exist.")
    schema = tenant.schema_name
    rows = 0
    temporary = output.with_name(output.name + ".partial")
    in_outer_transaction = connection.in_atomic_block
    try:
        # owner-only from the first byte: the archive holds the tenant's users
        temporary.unlink(missing_ok=True)
        temporary.touch(mode=0o600)
        temporary.chmod(0o600)
        with tarfile.open(temporary, "w:gz") as archive, transaction.atomic():
            if not in_outer_transaction:
                # One snapshot for every table; must be the transaction's first
                # statement, so it bypasses Django's cursor (which sets search_path).
                connection.ensure_connection()
                connection.connection.execute(
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
                )
            cursor = connection.cursor()
            tables = {
                table: columns
                for table, columns in _tables(cursor, schema).items()
                if table not in UNEXPORTED_TABLES
            }
            raw = cursor.cursor  # psycopg cursor, for COPY
            for table, columns in tables.items():
                buffer = bytearray()
                column_list = ", ".join(_quote(c) for c in columns)
                with raw.copy(
                    f"COPY {_quote(schema)}.{_quote(table)} ({column_list}) TO STDOUT"
                ) as copy:
                    for chunk in copy:
                        buffer += chunk
                rows += buffer.count(b"\n")
                _add_bytes(archive, f"data/{table}.copy", bytes(buffer))
            manifest = {
                "format": FORMAT_VERSION,
                "slug": schema,
                "name": tenant.name,
                "plan": tenant.plan.name,
                "status": tenant.status,
                "domains": [
                    d.domain for d in tenant.domains.order_by("-is_primary", "domain")
                ],
                "exported_at": timezone.now().isoformat(),
                "migrations": _migrations(cursor, schema),
                "tables": tables,
                "sequences": _sequences(cursor, schema),
            }
            media_files = _add_media(archive, trees.tree(schema))
            _add_bytes(
                archive, "manifest.json", json.dumps(manifest, indent=2).encode()
            )
        temporary.replace(output)
    finally:
        temporary.unlink(missing_ok=True)
    if audit:
        record_audit(
            action="tenant.exported",
            actor=actor,
            tenant=schema,
            target=f"tenant {schema}",
            after={"path": str(output), "rows": rows, "media_files": media_files},
        )
    return ExportSummary(
        path=output, tables=len(tables), rows=rows, media_files=media_files
    )


def read_manifest(archive: tarfile.TarFile) -> dict:
    try:
        member = archive.extractfile("manifest.json")
    except KeyError:
        raise ArchiveError("Not a tenant archive: it has no manifest.json.") from None
    manifest = json.loads(member.read())
    if manifest.get("format") != FORMAT_VERSION:
        raise ArchiveError(
            f"Unsupported archive format {manifest.get('format')!r} "
            f"(this version reads {FORMAT_VERSION})."
        )
    return manifest


def check_migration_state(manifest: dict) -> None:
    with connection.cursor() as cursor:
        current = {tuple(row) for row in _migrations(cursor, template_schema_name())}
    archived = {tuple(row) for row in manifest["migrations"]}
    if current != archived:
        missing = sorted(current - archived)[:3]
        extra = sorted(archived - current)[:3]
        raise ArchiveError(
            "The archive was made at another migration state than this "
            f"installation (not in archive: {missing or 'none'}; only in archive: "
            f"{extra or 'none'}). Import it on an installation at the same version, "
            "then migrate."
        )


def load_rows(archive: tarfile.TarFile, manifest: dict, schema: str) -> None:
    raw = connection.cursor().cursor
    with connection.cursor() as cursor:
        existing = _tables(cursor, schema)
        # the clone's own rows leave deferred checks pending, which TRUNCATE refuses
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "TRUNCATE "
            + ", ".join(f"{_quote(schema)}.{_quote(t)}" for t in existing)
            + " CASCADE"
        )
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    for table, columns in manifest["tables"].items():
        if table not in existing:
            raise ArchiveError(f"The archive's table {table!r} does not exist here.")
        member = archive.extractfile(f"data/{table}.copy")
        if member is None:
            raise ArchiveError(f"The archive lacks the data of {table!r}.")
        column_list = ", ".join(_quote(c) for c in columns)
        with raw.copy(
            f"COPY {_quote(schema)}.{_quote(table)} ({column_list}) FROM STDIN"
        ) as copy:
            while chunk := member.read(1 << 20):
                copy.write(chunk)
    _restore_sequences(schema, manifest["sequences"])


def _restore_sequences(schema: str, archived: dict[str, int | None]) -> None:
    """Move every sequence past the loaded rows. Sequences are found through the
    column that owns them: tenants cloned by other means may name them differently
    from this installation's template."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT s.relname, c.relname, a.attname
            FROM pg_depend d
            JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
            JOIN pg_namespace n ON n.oid = s.relnamespace
            JOIN pg_class c ON c.oid = d.refobjid
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
            WHERE n.nspname = %s AND d.deptype IN ('a', 'i')
            """,
            [schema],
        )
        for sequence, table, column in cursor.fetchall():
            cursor.execute(
                f"SELECT max({_quote(column)}) FROM {_quote(schema)}.{_quote(table)}"
            )
            highest = max(cursor.fetchone()[0] or 0, archived.get(sequence) or 0)
            if highest:
                cursor.execute(
                    "SELECT setval(%s, %s)",
                    [f"{_quote(schema)}.{_quote(sequence)}", highest],
                )
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


# Originals count against the plan; renditions are derived from them.
UPLOAD_FOLDERS = ("media/original_images/", "media/documents/")


def _upload_sizes(archive: tarfile.TarFile) -> list[int]:
    return [
        member.size
        for member in archive.getmembers()
        if member.isfile() and member.name.startswith(UPLOAD_FOLDERS)
    ]


def _add_media(archive: tarfile.TarFile, files: Storage) -> int:
    """Add the tree's files under ``media/``; returns the count."""
    names = trees.names(files)
    for name in names:
        info = tarfile.TarInfo(f"media/{name}")
        info.size = files.size(name)
        info.mtime = int(timezone.now().timestamp())
        with files.open(name, "rb") as source:
            archive.addfile(info, source)
    return len(names)


def extract_media_to(archive: tarfile.TarFile, staging: Storage) -> int:
    """Write the archive's media into the tree ``staging``; returns the count."""
    count = 0
    for member in archive.getmembers():
        if not member.name.startswith("media/") or not member.isfile():
            continue
        relative = member.name[len("media/") :]
        try:
            trees.safe_name(relative)
        except trees.MediaError:
            raise ArchiveError(
                f"Refusing unsafe path in archive: {member.name!r}"
            ) from None
        with archive.extractfile(member) as source:
            trees.write(staging, relative, source)
        count += 1
    return count


def _extract_media(archive: tarfile.TarFile, slug: str) -> None:
    """The archive's files become the tenant's, all at once (written aside first)."""
    token = secrets.token_hex(4)
    staging = trees.tree(f".import-{slug}-{token}")
    replaced = trees.tree(f".replaced-{slug}-{token}")
    try:
        extract_media_to(archive, staging)
        trees.replace_tree(trees.tree(slug), staging, replaced)
    finally:
        trees.delete_tree(staging)
        trees.delete_tree(replaced)


def tenant_import(
    *,
    archive_path: Path,
    slug: str,
    domains: list[str],
    plan: str | None = None,
    actor: Actor | None = None,
    staging_of: str = "",
) -> Tenant:
    """Restore an archive as a new tenant ``slug`` served at ``domains``
    (``staging_of``: the slug it is a staging copy of, for ``tenants clone``)."""
    archive_path = Path(archive_path)
    if not archive_path.is_file():
        raise ArchiveError(f"No such archive: {archive_path}")
    try:
        archive = tarfile.open(archive_path, "r:gz")
    except (tarfile.TarError, OSError) as exc:
        raise ArchiveError(f"Cannot read {archive_path}: {exc}") from None
    with archive:
        manifest = read_manifest(archive)
        hosts, plan_obj = validate_new_tenant(
            slug=slug,
            name=manifest["name"],
            domains=domains,
            plan=plan or manifest["plan"],
        )
        # the uploads it brings within the plan, like any other upload
        check_imported_uploads(plan_obj, _upload_sizes(archive))
        ensure_template_schema()
        check_migration_state(manifest)
        with claims.released_on_failure(slug), transaction.atomic():
            tenant = Tenant.objects.create(
                schema_name=slug,
                name=manifest["name"],
                plan=plan_obj,
                staging_of=staging_of,
            )
            for index, host in enumerate(hosts):
                Domain.objects.create(domain=host, tenant=tenant, is_primary=index == 0)
            clone_template(slug)
            load_rows(archive, manifest, slug)
            with schema_context(slug):
                from wagtail.models import Site

                Site.objects.filter(is_default_site=True).update(hostname=hosts[0])
            record_audit(
                action="tenant.cloned" if staging_of else "tenant.imported",
                actor=actor,
                tenant=slug,
                target=f"tenant {slug}",
                after={
                    "from": staging_of or manifest["slug"],
                    "archive": archive_path.name,
                    "domains": hosts,
                    "plan": plan_obj.name,
                },
            )
        connection.set_schema_to_public()
        try:
            _extract_media(archive, slug)
        except Exception:
            tenant_delete(slug=slug, confirm=True)
            raise
    invalidate_tenant_map()
    return tenant
