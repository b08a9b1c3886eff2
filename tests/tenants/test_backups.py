"""Backups through the operator's commands, inside the test transaction: taking and
listing them, checksums, bad input, the schedule, retention, staging clones, the
tenant's own data export, and the write freeze of a restore.

The in-place restore itself runs against a committed tenant and a real gunicorn
pool: tests/tenants/test_backups_integration.py.
"""

import datetime as dt
import io
import json
import shutil
import time
import zipfile
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context
from wagtail.models import Page

from tenants.backups import scheduling
from tenants.backups.models import Backup, DataExport
from tenants.backups.snapshots import backups_prune
from tenants.backups.storage import backup_storage, file_sha256
from tenants.models import Tenant
from tenants.tariffs.plans import plan_update
from tests.media import tenant_media_dir

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("tenants", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def cleanup_archives():
    names: list[str] = []
    yield names
    for name in names:
        backup_storage().delete(name)


def test_backup_command_stores_an_archive_with_its_checksum(cleanup_archives):
    output = run("backup", "acme")

    backup = Backup.objects.filter(tenant_schema="acme").latest("id")
    cleanup_archives.append(backup.storage_name)
    assert f"Backup {backup.pk} of acme" in output
    assert backup.status == "ok" and backup.kind == "manual"
    stored = backup_storage().path(backup.storage_name)
    assert file_sha256(stored) == backup.sha256
    assert backup.size_bytes > 1000 and backup.rows > 50
    listing = run("backups", "acme")
    assert str(backup.pk) in listing and backup.sha256[:16] in listing
    audit = run("audit", "acme", "--action", "backup.", "--json").splitlines()
    entry = json.loads(audit[-1])
    assert (entry["action"], entry["actor_kind"], entry["source"]) == (
        "backup.manual",
        "operator",
        "cli",
    )
    assert entry["after"]["sha256"] == backup.sha256
    rows = json.loads(run("backups", "acme", "--json"))
    assert rows[-1]["id"] == backup.pk and rows[-1]["sha256"] == backup.sha256
    assert backup.pk not in [
        row["id"] for row in json.loads(run("backups", "globex", "--json"))
    ]


def test_a_corrupted_archive_is_never_restored(cleanup_archives):
    run("backup", "acme")
    backup = Backup.objects.filter(tenant_schema="acme").latest("id")
    cleanup_archives.append(backup.storage_name)
    path = backup_storage().path(backup.storage_name)
    with open(path, "r+b") as archive:
        archive.seek(200)
        archive.write(b"\x00corrupt\x00")
    with schema_context("acme"):
        titles = sorted(Page.objects.values_list("title", flat=True))

    with pytest.raises(CommandError, match="fails its checksum"):
        run("restore", "acme", "--backup", str(backup.pk))

    with schema_context("acme"):
        assert sorted(Page.objects.values_list("title", flat=True)) == titles
    assert Tenant.objects.get(schema_name="acme").writes_frozen_until is None


def test_bad_restore_input_is_a_clear_error_and_changes_nothing(cleanup_archives):
    run("backup", "globex")
    globex_backup = Backup.objects.filter(tenant_schema="globex").latest("id")
    cleanup_archives.append(globex_backup.storage_name)

    with pytest.raises(CommandError, match="No backup with the id '999999'"):
        run("restore", "acme", "--backup", "999999")
    with pytest.raises(CommandError, match="is a backup of 'globex', not of 'acme'"):
        run("restore", "acme", "--backup", str(globex_backup.pk))
    with pytest.raises(CommandError, match="No tenant"):
        run("restore", "nosuch", "--backup", str(globex_backup.pk))
    earlier = Backup.objects.create(
        tenant_schema="acme", kind="manual", status="ok", sha256="0" * 64
    )
    Backup.objects.filter(pk=earlier.pk).update(
        created_at=Tenant.objects.get(schema_name="acme").created_at
        - dt.timedelta(days=1)
    )
    with pytest.raises(CommandError, match="taken of an earlier tenant 'acme'"):
        run("restore", "acme", "--backup", str(earlier.pk))
    with pytest.raises(CommandError, match="has no restore that can be undone"):
        run("restore", "acme", "--undo")
    with pytest.raises(CommandError):
        run("backup", "nosuch")
    assert Tenant.objects.get(schema_name="acme").writes_frozen_until is None


def test_slots_spread_the_fleet_over_the_period():
    period = 24 * 3600
    offsets = [
        scheduling.slot_offset_seconds(f"tenant_{i}", period) for i in range(1000)
    ]
    # every hour of the day gets some tenants, none gets a pile of them
    per_hour = [0] * 24
    for offset in offsets:
        per_hour[offset // 3600] += 1
    assert min(per_hour) > 20 and max(per_hour) < 70
    assert scheduling.slot_offset_seconds("acme", period) == (
        scheduling.slot_offset_seconds("acme", period)
    )


def test_due_tenants_follow_the_plan_features():
    now = timezone.now()
    due = {tenant.slug for tenant in scheduling.due_tenants(now=now)}
    assert {"acme", "globex"} <= due
    acme = Tenant.objects.get(schema_name="acme")
    Backup.objects.create(tenant_schema="acme", kind="scheduled", status="ok")
    assert "acme" not in {t.slug for t in scheduling.due_tenants(now=now)}
    # the next slot makes it due again
    later = now + dt.timedelta(hours=24)
    assert "acme" in {t.slug for t in scheduling.due_tenants(now=later)}
    plan_update(name=acme.plan.name, limits={}, features={"backups": 0})
    assert "acme" not in {t.slug for t in scheduling.due_tenants(now=later)}


def test_beat_schedules_the_backup_task():
    from django.conf import settings

    from cms_project.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["schedule-backups"]
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
    assert "tenants.run_next_backup" in app.tasks


def test_retention_prunes_old_archives_but_keeps_the_newest_good_one(
    cleanup_archives,
):
    run("backup", "globex")
    run("backup", "globex")
    old, newest = Backup.objects.filter(tenant_schema="globex").order_by("id")[:2]
    cleanup_archives.extend([old.storage_name, newest.storage_name])
    long_ago = timezone.now() - dt.timedelta(days=30)
    Backup.objects.filter(pk__in=[old.pk, newest.pk]).update(created_at=long_ago)

    result = backups_prune()

    assert not Backup.objects.filter(pk=old.pk).exists()
    assert not backup_storage().exists(old.storage_name)
    assert Backup.objects.filter(pk=newest.pk).exists()  # the newest good one
    assert result.deleted >= 1


def test_clone_is_an_independent_staging_copy():
    output = run(
        "clone", "acme", "--to", "acme_staging", "--domain", "staging.acme.localhost"
    )
    assert "staging copy acme_staging" in output
    copy = Tenant.objects.get(schema_name="acme_staging")
    assert copy.staging_of == "acme"
    cloned = json.loads(run("audit", "acme_staging", "--json").splitlines()[-1])
    assert cloned["action"] == "tenant.cloned"
    assert cloned["after"]["from"] == "acme" and cloned["actor_kind"] == "operator"
    with schema_context("acme_staging"):
        page = Page.objects.get(slug="acme-launches-the-mark-iv")
        page.title = "Changed on staging"
        page.save()
        assert get_user_model().objects.filter(username="editor").exists()
    with schema_context("acme"):
        assert (
            Page.objects.get(slug="acme-launches-the-mark-iv").title
            != "Changed on staging"
        )
    staging = Client(HTTP_HOST="staging.acme.localhost")
    response = staging.get("/acme-launches-the-mark-iv/")
    assert response.status_code == 200
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert b'<meta name="robots" content="noindex, nofollow">' in response.content
    live = Client(HTTP_HOST="acme.localhost").get("/acme-launches-the-mark-iv/")
    assert "X-Robots-Tag" not in live
    assert b'name="robots"' not in live.content
    staging.post("/admin/login/", {"username": "admin", "password": "acme-admin-demo"})
    admin = staging.get("/admin/")
    assert b"Staging copy of acme" in admin.content
    assert tenant_media_dir("acme_staging") != tenant_media_dir("acme")
    shutil.rmtree(tenant_media_dir("acme_staging"), ignore_errors=True)


def test_clone_to_an_existing_slug_is_refused():
    with pytest.raises(CommandError, match="already exists"):
        run("clone", "acme", "--to", "globex", "--domain", "x.localhost")
    with pytest.raises(CommandError, match="already belongs"):
        run("clone", "acme", "--to", "acme_two", "--domain", "globex.localhost")
    assert not Tenant.objects.filter(schema_name="acme_two").exists()


def test_portable_export_has_pages_revisions_and_users_without_hashes(tmp_path):
    output = tmp_path / "acme.zip"
    text = run("export", "acme", "--portable", "-o", str(output))
    assert "pages" in text
    with zipfile.ZipFile(output) as bundle:
        pages = json.loads(bundle.read("pages.json"))
        users = json.loads(bundle.read("users.json"))
        names = bundle.namelist()
    slugs = {page["fields"]["slug"] for page in pages}
    assert "acme-launches-the-mark-iv" in slugs
    assert any(page["revisions"] for page in pages)
    assert {user["username"] for user in users} >= {"admin", "editor"}
    assert all("password" not in user for user in users)
    raw = json.dumps(users)
    assert "md5$" not in raw and "pbkdf2" not in raw
    assert "manifest.json" in names


def _admin(host: str, slug: str) -> Client:
    client = Client(HTTP_HOST=host)
    assert (
        client.post(
            "/admin/login/", {"username": "admin", "password": f"{slug}-admin-demo"}
        ).status_code
        == 302
    )
    return client


def test_tenant_admin_downloads_its_export_through_an_expiring_link(
    settings, django_capture_on_commit_callbacks, monkeypatch
):
    from cms_project.celery import app

    built = []

    def send_task(name, args=None, **options):
        assert name == "tenants.build_data_export"
        built.append(args[0])

    monkeypatch.setattr(app, "send_task", send_task)
    client = _admin("acme.localhost", "acme")
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/admin/data-export/").status_code == 302
    export = DataExport.objects.get(pk=built[0])
    assert export.tenant_schema == "acme"
    # the worker's part, run here (the integration test runs it on a worker)
    from tenants.backups.data_export import data_export_build

    data_export_build(export_id=export.pk)
    page = client.get("/admin/data-export/").content.decode()
    link = page.split('href="/admin/data-export/download/')[1].split('"')[0]
    url = f"/admin/data-export/download/{link}"

    response = client.get(url)
    assert response.status_code == 200
    payload = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(payload)) as bundle:
        users = json.loads(bundle.read("users.json"))
    assert users and all("password" not in user for user in users)
    backup_storage().delete(DataExport.objects.get(pk=export.pk).storage_name)

    # another tenant's admin cannot use the link
    assert _admin("globex.localhost", "globex").get(url).status_code == 410
    # and it expires
    settings.CMS_DATA_EXPORT_LINK_SECONDS = 1
    time.sleep(2.1)
    expired = client.get(url)
    assert expired.status_code == 410
    assert b"expired" in expired.content


def test_writes_are_refused_with_retry_after_while_frozen_and_reads_served():
    from tenants.backups.freeze import freeze_writes, thaw_writes

    freeze_writes(slug="acme", seconds=60)
    try:
        client = Client(HTTP_HOST="acme.localhost")
        write = client.post(
            "/admin/login/", {"username": "admin", "password": "acme-admin-demo"}
        )
        assert write.status_code == 503
        assert 1 <= int(write["Retry-After"]) <= 10
        assert b"paused for a moment" in write.content
        assert client.get("/acme-launches-the-mark-iv/").status_code == 200
        other = Client(HTTP_HOST="globex.localhost").post(
            "/admin/login/", {"username": "admin", "password": "globex-admin-demo"}
        )
        assert other.status_code == 302
    finally:
        thaw_writes(slug="acme")
    after = Client(HTTP_HOST="acme.localhost").post(
        "/admin/login/", {"username": "admin", "password": "acme-admin-demo"}
    )
    assert after.status_code == 302


# --- the operator's backup page (/ops/) ---------------------------------------------


def _operator(is_staff: bool = True) -> Client:
    user = get_user_model().objects.create_user(
        "operator", password="operator-test-pw", is_staff=is_staff
    )
    client = Client(HTTP_HOST="localhost", REMOTE_ADDR="198.51.100.7")
    client.force_login(user)
    return client


def test_operator_backs_up_from_the_ops_page_and_it_is_audited(cleanup_archives):
    from tenants.audit.models import AuditEntry

    client = _operator()
    response = client.post("/ops/tenants/acme/backups/", {"action": "backup"})

    assert response.status_code == 302
    backup = Backup.objects.filter(tenant_schema="acme").latest("id")
    cleanup_archives.append(backup.storage_name)
    page = client.get(response["Location"])
    assert f"Backup {backup.pk} taken." in page.content.decode()
    assert "Restore in place" in page.content.decode()
    entry = AuditEntry.objects.filter(action="backup.manual").latest("id")
    assert (entry.actor, entry.actor_kind, entry.source, entry.ip) == (
        "operator",
        "operator",
        "ops",
        "198.51.100.7",
    )
    assert entry.tenant_schema == "acme"


def test_ops_page_refuses_bad_input_readably_and_outsiders(cleanup_archives):
    run("backup", "globex")
    other = Backup.objects.filter(tenant_schema="globex").latest("id")
    cleanup_archives.append(other.storage_name)
    client = _operator()

    wrong = client.post(
        "/ops/tenants/acme/backups/", {"action": "restore", "backup": str(other.pk)}
    )
    assert wrong.status_code == 400
    assert "is a backup of" in wrong.content.decode()
    assert client.post("/ops/tenants/nosuch/backups/").status_code == 404
    assert (
        client.post("/ops/tenants/acme/backups/", {"action": "undo"}).status_code == 400
    )
    anonymous = Client(HTTP_HOST="localhost").post(
        "/ops/tenants/acme/backups/", {"action": "backup"}
    )
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/ops/login/")
    assert Backup.objects.filter(tenant_schema="acme").count() == 0
