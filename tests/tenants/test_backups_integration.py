"""Backups with real processes on committed data: a scheduled backup taken by a
real Celery beat and worker, an in-place restore while a gunicorn pool serves the
tenant to a reader sampling every 10 ms, its undo, a restore that fails half-way,
and a tenant's data export built by the worker."""

import http.client
import threading
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import schema_context, schema_exists

from tenants.audit.models import AuditEntry
from tenants.backups import restore as restore_module
from tenants.backups.models import Backup, DataExport
from tenants.backups.storage import backup_storage
from tenants.models import Plan, Tenant
from tenants.provisioning.creation import tenant_create, tenant_delete
from tenants.tariffs.plans import plan_create
from tests.integration import (
    REPO_ROOT,
    free_port,
    process_env,
    stop_process,
    wait_for,
)

SLUG = "restorable"
HOST = "restorable.localhost"


def _remove_leftovers() -> None:
    connection.set_schema_to_public()
    if Tenant.objects.filter(schema_name=SLUG).exists():
        tenant_delete(slug=SLUG, confirm=True)
    for backup in Backup.objects.filter(tenant_schema=SLUG):
        backup_storage().delete(backup.storage_name)
    Plan.objects.filter(name="restore-check").delete()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE '\\_restore\\_%' "
            "OR nspname LIKE '\\_previous\\_%' OR nspname LIKE '\\_undone\\_%'"
        )
        for (schema,) in cursor.fetchall():
            cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="module")
def committed_tenant(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        _remove_leftovers()
        plan_create(
            name="restore-check",
            limits={"public_reads_per_minute": 1_000_000, "concurrent_requests": 50},
            base="pro",
        )
        tenant_create(
            slug=SLUG, name="Restorable", domains=[HOST], plan="restore-check"
        )
        connection.set_schema_to_public()
        yield
        _remove_leftovers()


@pytest.fixture
def committed(committed_tenant, django_db_blocker):
    with django_db_blocker.unblock():
        yield
        connection.set_schema_to_public()


@pytest.fixture(scope="module")
def pool(committed_tenant, tmp_path_factory):
    from cms_project import devstack

    port = free_port()
    # as tests.integration.start_gunicorn, with more time to boot on a busy machine
    process = devstack.start_gunicorn(
        port,
        env=process_env(GUNICORN_ACCESSLOG="/dev/null"),
        log_path=tmp_path_factory.mktemp("gunicorn") / "log",
        workers=2,
        timeout=240,
    )
    yield port
    stop_process(process)


def _get(port: int, path: str = "/") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": HOST})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def _set_home_title(title: str) -> None:
    from wagtail.models import Site

    with schema_context(SLUG):
        home = Site.objects.get(is_default_site=True).root_page.specific
        home.title = title
        home.save_revision().publish()
    connection.set_schema_to_public()


def _run(*args: str) -> str:
    out = StringIO()
    call_command("tenants", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


class Reader(threading.Thread):
    """Reads the tenant's home page every 10 ms; keeps every status and title."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.samples: list[tuple[float, int, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                status, body = _get(self.port)
            except OSError as exc:
                status, body = 0, str(exc)
            title = (
                body.split("<title>")[1].split("</title>")[0]
                if "<title>" in body
                else ""
            )
            self.samples.append((time.monotonic(), status, title))
            time.sleep(0.01)


def test_restore_in_place_under_read_load_then_undo(committed, pool):
    _set_home_title("Before the accident")
    _run("backup", SLUG)
    backup = Backup.objects.filter(tenant_schema=SLUG).latest("id")
    _set_home_title("After the accident")
    assert "After the accident" in _get(pool)[1]

    reader = Reader(pool)
    reader.start()
    time.sleep(0.5)
    output = _run("restore", SLUG, "--backup", str(backup.pk))
    time.sleep(1.5)
    reader.stop.set()
    reader.join()

    assert "verified and live" in output
    statuses = [status for _, status, _ in reader.samples]
    assert len(statuses) > 50
    assert set(statuses) == {200}, f"failed reads: {[s for s in statuses if s != 200]}"
    titles = [title for _, _, title in reader.samples]
    assert "After the accident" in titles[0]
    assert "Before the accident" in titles[-1]
    # never a mix back and forth: once restored, restored
    first_restored = next(i for i, t in enumerate(titles) if "Before" in t)
    assert all("Before" in t for t in titles[first_restored:])
    restore_entry = AuditEntry.objects.filter(
        tenant_schema=SLUG, action="tenant.restored"
    ).latest("id")
    assert restore_entry.actor_kind == "operator"

    undo = _run("restore", SLUG, "--undo")
    assert "Undid restore" in undo
    wait_for(
        lambda: "After the accident" in _get(pool)[1],
        timeout=10,
        what="the state before the restore served again",
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE '\\_undone\\_%'"
        )
        assert cursor.fetchone()[0] == 0
    audit = _run("audit", SLUG)
    assert "tenant.restored" in audit and "tenant.restore_undone" in audit


def test_a_restore_failing_half_way_leaves_the_live_tenant_untouched(
    committed, pool, monkeypatch
):
    _set_home_title("Live and well")
    _run("backup", SLUG)
    backup = Backup.objects.filter(tenant_schema=SLUG).latest("id")
    _set_home_title("Live and changed")

    def broken_verification(**kwargs):
        raise RuntimeError("disk full while checking the shadow")

    monkeypatch.setattr(restore_module, "verify_shadow", broken_verification)
    with pytest.raises(CommandError, match="the live site is unchanged"):
        _run("restore", SLUG, "--backup", str(backup.pk))

    assert "Live and changed" in _get(pool)[1]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE '\\_restore\\_%'"
        )
        assert cursor.fetchone()[0] == 0
    assert Tenant.objects.get(schema_name=SLUG).writes_frozen_until is None
    assert schema_exists(SLUG)


@pytest.fixture
def beat_and_worker(committed_tenant, tmp_path):
    import subprocess
    import sys

    env = process_env(CMS_BACKUP_SCHEDULE_SECONDS="2")
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "cms_project", "worker",
            "--pool", "prefork", "--concurrency", "1", "-Q", "tests,tests-backups",
            "--loglevel", "INFO", "--without-gossip", "--without-mingle",
        ],
        cwd=REPO_ROOT, env=env,
        stdout=(tmp_path / "worker.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    beat = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "cms_project", "beat",
            "-s", str(tmp_path / "beat-schedule"), "--loglevel", "INFO",
        ],
        cwd=REPO_ROOT, env=env,
        stdout=(tmp_path / "beat.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    yield tmp_path
    stop_process(beat)
    stop_process(worker)


def test_a_scheduled_backup_is_taken_by_a_real_beat_and_worker(
    committed, beat_and_worker
):
    started = Backup.objects.order_by("-id").values_list("id", flat=True).first() or 0
    Backup.objects.filter(tenant_schema=SLUG, kind="scheduled").delete()
    try:
        backup = wait_for(
            lambda: Backup.objects.filter(
                tenant_schema=SLUG, kind="scheduled", status="ok"
            ).first(),
            timeout=180,
            what=f"a scheduled backup (logs in {beat_and_worker})",
        )
        assert backup.sha256 and backup_storage().exists(backup.storage_name)
        # one per slot: the next ticks do not queue it again
        time.sleep(5)
        assert Backup.objects.filter(tenant_schema=SLUG, kind="scheduled").count() == 1
    finally:
        for other in Backup.objects.filter(id__gt=started).exclude(tenant_schema=SLUG):
            backup_storage().delete(other.storage_name)
            other.delete()


def test_a_data_export_is_built_by_a_real_worker(committed, celery_worker):
    from tenants.audit.trail import Actor
    from tenants.backups.data_export import data_export_request

    tenant = Tenant.objects.get(schema_name=SLUG)
    export = data_export_request(tenant=tenant, actor=Actor.system("test"))
    try:
        ready = wait_for(
            lambda: DataExport.objects.filter(pk=export.pk, status="ready").first(),
            timeout=60,
            what=f"the export built by the worker (log: {celery_worker})",
        )
        assert ready.size_bytes > 0
        assert backup_storage().exists(ready.storage_name)
    finally:
        export.refresh_from_db()
        backup_storage().delete(export.storage_name)
