"""Restoring a tenant in place from one of its backups, without downtime.

1. Check the request (the backup exists, is this tenant's, finished) and read the
   archive back from the storage, refusing it when its SHA-256 differs from the one
   recorded at backup time. Nothing has changed yet.
2. Freeze the tenant's writes (``tenants.backups.freeze``: 503 with Retry-After), so
   that nothing a client sends from here on lands in the state being replaced.
3. Build the restored state beside the live one: a shadow schema cloned from the
   template (``tenants.provisioning.cloning``) and loaded with the archive's rows
   (``tenants.provisioning.portability``), and a shadow media folder.
4. Verify the shadow: every table's row count against the archive, every media
   file's SHA-256 against the archive, and a render of the site's home page.
5. Swap in one transaction: the live schema is renamed to the kept name and the
   shadow to the tenant's slug (PostgreSQL renames are catalog updates: readers
   are not blocked, and each statement sees either the old or the new schema). Then
   the media folders are swapped by two renames, the tenant's cache keys purged and
   the host map's generation bumped, and writes are thawed.

A failure at any step before the swap drops the shadow and leaves the live tenant
as it was; the swap itself is one transaction. The replaced state is kept for
``CMS_RESTORE_GRACE_HOURS``: ``restore_undo`` swaps it back the same way;
``restores_expire`` (beat) drops it afterwards.
"""

import datetime as dt
import logging
import secrets
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.storage import Storage
from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from tenants.adapters.wagtail import attach_site
from tenants.audit.trail import Actor, record_audit
from tenants.backups.freeze import freeze_writes, thaw_writes
from tenants.backups.models import Backup, Restore
from tenants.backups.snapshots import BackupNotUsable, backup_get
from tenants.backups.storage import fetch_verified, stream_sha256
from tenants.errors import TenantError
from tenants.media import trees
from tenants.models import Domain, Tenant
from tenants.provisioning import portability
from tenants.provisioning.cloning import clone_template
from tenants.provisioning.creation import (
    ensure_template_schema,
    has_pending_migrations,
    purge_tenant_cache,
)
from tenants.registry.resolution import invalidate_tenant_map
from tenants.registry.selectors import tenant_get

logger = logging.getLogger(__name__)

# Writes stay refused at most this long if the restoring process dies half-way.
FREEZE_SECONDS = 900


class RestoreFailed(TenantError):
    """The restore stopped before the swap; the live tenant is unchanged."""


class RestoreInProgress(TenantError):
    pass


class NothingToUndo(TenantError):
    pass


@dataclass(frozen=True)
class RestoreResult:
    restore: Restore
    tables: int
    rows: int
    media_files: int
    # seconds from the start at which each step ended (fetched, frozen, built,
    # verified, swapped, done): where a restore spends its time
    timings: dict[str, float]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class _RestoreLock:
    """One restore or undo per tenant at a time (a session advisory lock)."""

    def __init__(self, slug: str) -> None:
        self.slug = slug

    def __enter__(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s))", [f"restore:{self.slug}"]
            )
            if not cursor.fetchone()[0]:
                raise RestoreInProgress(
                    f"A restore of {self.slug!r} is already running; try again when "
                    "it has finished."
                )

    def __exit__(self, *exc) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_unlock(hashtext(%s))", [f"restore:{self.slug}"]
            )


def _archive_row_counts(archive: tarfile.TarFile, manifest: dict) -> dict[str, int]:
    counts = {}
    for table in manifest["tables"]:
        member = archive.extractfile(f"data/{table}.copy")
        rows = 0
        while chunk := member.read(1 << 20):
            rows += chunk.count(b"\n")
        counts[table] = rows
    return counts


def _schema_row_counts(schema: str, tables: list[str]) -> dict[str, int]:
    if not tables:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            " UNION ALL ".join(
                f"SELECT %s, count(*) FROM {_quote(schema)}.{_quote(table)}"
                for table in tables
            ),
            tables,
        )
        return dict(cursor.fetchall())


def _media_checksums(archive: tarfile.TarFile) -> dict[str, str]:
    sums = {}
    for member in archive.getmembers():
        if member.isfile() and member.name.startswith("media/"):
            with archive.extractfile(member) as source:
                sums[member.name[len("media/") :]] = stream_sha256(source)
    return sums


def _tree_checksums(files: Storage) -> dict[str, str]:
    sums = {}
    for name in trees.names(files):
        with files.open(name, "rb") as source:
            sums[name] = stream_sha256(source)
    return sums


def _render_home_page(tenant: Tenant, schema: str, hostname: str) -> None:
    """Render the site's root page from ``schema`` as an anonymous visitor gets it."""
    from django.contrib.auth.models import AnonymousUser
    from wagtail.models import Site

    with schema_context(schema):
        site = Site.objects.filter(is_default_site=True).select_related("root_page")
        site = site.first()
        if site is None:
            raise RestoreFailed("The restored data has no default site.")
        request = HttpRequest()
        request.method = "GET"
        request.path = request.path_info = "/"
        request.META = {
            "HTTP_HOST": hostname,
            "SERVER_NAME": hostname,
            "SERVER_PORT": str(site.port),
        }
        request.tenant = tenant
        request.user = AnonymousUser()
        attach_site(request, site)
        response = site.root_page.specific.serve(request)
        if hasattr(response, "render"):
            response.render()
        if response.status_code != 200:
            raise RestoreFailed(
                f"The restored home page answered {response.status_code}."
            )


def verify_shadow(
    *,
    tenant: Tenant,
    schema: str,
    media: Storage,
    archive: tarfile.TarFile,
    manifest: dict,
    hostname: str,
) -> int:
    """Check the shadow against the archive before it may go live; returns the
    number of rows checked. Raises ``RestoreFailed`` on any difference."""
    expected = _archive_row_counts(archive, manifest)
    found = _schema_row_counts(schema, list(expected))
    wrong = {
        t: (expected[t], found.get(t)) for t in expected if found.get(t) != expected[t]
    }
    if wrong:
        table, (want, got) = next(iter(wrong.items()))
        raise RestoreFailed(
            f"Row counts differ in {len(wrong)} table(s), e.g. {table}: archive "
            f"{want}, restored {got}."
        )
    if _media_checksums(archive) != _tree_checksums(media):
        raise RestoreFailed("The restored media files differ from the archive's.")
    _render_home_page(tenant, schema, hostname)
    return sum(expected.values())


def _drop_schema(schema: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {_quote(schema)} CASCADE")


def _kept_media(previous_media: str) -> Storage:
    """The tree a restore kept: its folder name (restores before media trees stored
    the folder's absolute path, whose last part is the same name)."""
    return trees.tree(Path(previous_media).name)


def _after_swap(slug: str) -> None:
    connection.set_schema_to_public()
    invalidate_tenant_map()
    try:
        purge_tenant_cache(slug)
    except Exception:
        logger.exception("could not purge the cache keys of %s after a restore", slug)


def restore_backup(
    *, slug: str, backup_id: int | str, actor: Actor | None = None
) -> RestoreResult:
    """Replace tenant ``slug``'s data and media with backup ``backup_id``, live."""
    tenant = tenant_get(slug)
    backup = backup_get(backup_id=backup_id, slug=slug)
    if backup.created_at < tenant.created_at:
        # the slug was deleted and given again: that backup is someone else's data
        raise BackupNotUsable(
            f"Backup {backup.pk} was taken of an earlier tenant {slug!r} (deleted "
            f"before this one was created on {tenant.created_at:%Y-%m-%d}); restore "
            "it with `tenants import` under a new slug instead."
        )
    if backup.status != Backup.Status.OK:
        raise BackupNotUsable(
            f"Backup {backup.pk} is {backup.status}, not a finished backup."
        )
    primary = (
        Domain.objects.filter(tenant=tenant, is_primary=True)
        .values_list("domain", flat=True)
        .first()
    )
    token = secrets.token_hex(4)
    shadow, previous = f"_restore_{token}", f"_previous_{token}"
    # media folders beside the tenant's own (tenants.media.trees)
    shadow_folder, previous_folder = (
        f".restore-{slug}-{token}",
        f".previous-{slug}-{token}",
    )
    shadow_media, previous_media = (
        trees.tree(shadow_folder),
        trees.tree(previous_folder),
    )
    began = time.monotonic()
    timings: dict[str, float] = {}

    def step(name: str) -> None:
        timings[name] = round(time.monotonic() - began, 3)

    with _RestoreLock(slug), tempfile.TemporaryDirectory(prefix="restore-") as tmp:
        archive_path = fetch_verified(
            name=backup.storage_name, sha256=backup.sha256, into=Path(tmp)
        )
        step("fetched")
        with tarfile.open(archive_path, "r:gz") as archive:
            manifest = portability.read_manifest(archive)
            if manifest["slug"] != slug:
                raise BackupNotUsable(
                    f"The archive of backup {backup.pk} holds {manifest['slug']!r}, "
                    f"not {slug!r}."
                )
            ensure_template_schema()
            portability.check_migration_state(manifest)
            freeze_writes(slug=slug, seconds=FREEZE_SECONDS)
            step("frozen")
            swapped = False
            try:
                with transaction.atomic():
                    clone_template(shadow)
                    portability.load_rows(archive, manifest, shadow)
                with schema_context(shadow):
                    from wagtail.models import Site

                    Site.objects.filter(is_default_site=True).update(hostname=primary)
                media_files = portability.extract_media_to(archive, shadow_media)
                step("built")
                rows = verify_shadow(
                    tenant=tenant,
                    schema=shadow,
                    media=shadow_media,
                    archive=archive,
                    manifest=manifest,
                    hostname=primary,
                )
                step("verified")
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(
                        f"ALTER SCHEMA {_quote(slug)} RENAME TO {_quote(previous)}"
                    )
                    cursor.execute(
                        f"ALTER SCHEMA {_quote(shadow)} RENAME TO {_quote(slug)}"
                    )
                    restore = Restore.objects.create(
                        tenant_schema=slug,
                        backup=backup,
                        previous_schema=previous,
                        previous_media=previous_folder,
                        undo_until=timezone.now()
                        + dt.timedelta(hours=settings.CMS_RESTORE_GRACE_HOURS),
                    )
                    record_audit(
                        action="tenant.restored",
                        actor=actor,
                        tenant=slug,
                        target=f"backup {backup.pk}",
                        before={"kept_as": previous},
                        after={
                            "backup": backup.pk,
                            "backup_taken": backup.created_at.isoformat(),
                            "sha256": backup.sha256,
                        },
                    )
                swapped = True
                trees.replace_tree(trees.tree(slug), shadow_media, previous_media)
            except Exception as exc:
                connection.set_schema_to_public()
                if swapped:  # the data is live; only the media folders failed
                    _after_swap(slug)
                    thaw_writes(slug=slug)
                    raise RestoreFailed(
                        f"{slug!r} was restored from backup {backup.pk}, but its media "
                        f"folder could not be swapped in ({exc}); undo with "
                        f"`tenants restore {slug} --undo`."
                    ) from exc
                if schema_exists(shadow):
                    _drop_schema(shadow)
                trees.delete_tree(shadow_media)
                thaw_writes(slug=slug)
                if isinstance(exc, TenantError):
                    raise
                raise RestoreFailed(
                    f"Restoring {slug!r} from backup {backup.pk} failed before the "
                    f"swap; the live site is unchanged: {exc}"
                ) from exc
            step("swapped")
            _after_swap(slug)
            thaw_writes(slug=slug)
            step("done")
            logger.info("restore of %s from backup %s: %s", slug, backup.pk, timings)
            return RestoreResult(
                restore=restore,
                tables=len(manifest["tables"]),
                rows=rows,
                media_files=media_files,
                timings=timings,
            )


def restore_undo(*, slug: str, actor: Actor | None = None) -> Restore:
    """Swap the state the last restore replaced back in, within the grace period."""
    tenant_get(slug)
    restore = (
        Restore.objects.filter(tenant_schema=slug, status=Restore.Status.SWAPPED)
        .order_by("-swapped_at", "-id")
        .first()
    )
    if restore is None:
        raise NothingToUndo(f"{slug!r} has no restore that can be undone.")
    if restore.undo_until < timezone.now() or not schema_exists(
        restore.previous_schema
    ):
        raise NothingToUndo(
            f"The state before restore {restore.pk} of {slug!r} is no longer kept "
            f"(kept until {restore.undo_until:%Y-%m-%d %H:%M} UTC)."
        )
    ensure_template_schema()
    if has_pending_migrations(restore.previous_schema):
        raise NothingToUndo(
            f"The kept state of {slug!r} predates migrations applied since; it can "
            "no longer be swapped back."
        )
    token = secrets.token_hex(4)
    undone = f"_undone_{token}"
    undone_media = trees.tree(f".undone-{slug}-{token}")
    with _RestoreLock(slug):
        freeze_writes(slug=slug, seconds=FREEZE_SECONDS)
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    f"ALTER SCHEMA {_quote(slug)} RENAME TO {_quote(undone)}"
                )
                cursor.execute(
                    f"ALTER SCHEMA {_quote(restore.previous_schema)} "
                    f"RENAME TO {_quote(slug)}"
                )
                Restore.objects.filter(pk=restore.pk).update(
                    status=Restore.Status.UNDONE
                )
                record_audit(
                    action="tenant.restore_undone",
                    actor=actor,
                    tenant=slug,
                    target=f"restore {restore.pk}",
                    before={"backup": restore.backup_id},
                    after={"from": restore.previous_schema},
                )
            trees.replace_tree(
                trees.tree(slug), _kept_media(restore.previous_media), undone_media
            )
            _after_swap(slug)
        finally:
            thaw_writes(slug=slug)
    # the restored state is not kept: undoing an undo is restoring the backup again
    _drop_schema(undone)
    trees.delete_tree(undone_media)
    restore.refresh_from_db()
    return restore


def restores_expire(*, now: dt.datetime | None = None) -> int:
    """Drop the replaced states whose grace period has passed (beat)."""
    now = now or timezone.now()
    expired = 0
    for restore in Restore.objects.filter(
        status=Restore.Status.SWAPPED, undo_until__lt=now
    ):
        _drop_schema(restore.previous_schema)
        if restore.previous_media:
            trees.delete_tree(_kept_media(restore.previous_media))
        Restore.objects.filter(pk=restore.pk).update(status=Restore.Status.EXPIRED)
        expired += 1
    return expired
