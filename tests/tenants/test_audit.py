"""The audit trail: operator commands, security events, append-only storage, and
each tenant seeing only its own entries."""

import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django_tenants.utils import schema_context

from tenants.audit.models import AppendOnlyError, AuditEntry
from tenants.audit.trail import record_audit

pytestmark = pytest.mark.django_db


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def audit_json(*args: str) -> list[dict]:
    return [json.loads(line) for line in run("tenants", "audit", *args).splitlines()]


def test_every_operator_command_is_recorded_and_readable_by_tenants_audit():
    run(
        "tenants", "create", "shop", "--name", "Shop", "--domain", "shop.localhost",
        "--plan", "starter",
    )  # fmt: skip
    run("tenants", "set-plan", "shop", "pro")
    run("tenants", "add-domain", "shop", "www.shop.localhost")
    run("tenants", "remove-domain", "shop", "www.shop.localhost")
    run("tenants", "suspend", "shop")
    run("tenants", "resume", "shop")
    run("plans", "create", "gold", "--from", "pro")
    run("plans", "update", "gold", "--feature", "backup_every_hours=5")
    run("tenants", "delete", "shop", "--yes")

    shop = audit_json("shop", "--json")
    # the tenant's first admin user is recorded as well (by the system)
    operator_actions = [e for e in shop if e["actor_kind"] == "operator"]
    assert [e["action"] for e in operator_actions] == [
        "tenant.created",
        "tenant.set_plan",
        "domain.added",
        "domain.removed",
        "tenant.set_status.suspended",
        "tenant.set_status.active",
        "tenant.deleted",
    ]
    assert all(e["source"] == "cli" and "@" in e["actor"] for e in operator_actions)
    set_plan = operator_actions[1]
    assert set_plan["before"] == {"plan": "starter"}
    assert set_plan["after"] == {"plan": "pro"}
    assert operator_actions[2]["after"]["domains"] == [
        "shop.localhost",
        "www.shop.localhost",
    ]
    plan_entries = audit_json("--json", "--action", "plan.")
    assert [e["action"] for e in plan_entries][-2:] == ["plan.created", "plan.updated"]
    assert plan_entries[-1]["before"]["features"].get("backup_every_hours") != 5
    assert plan_entries[-1]["after"]["features"]["backup_every_hours"] == 5
    # the human-readable listing names the actions too
    listing = run("tenants", "audit", "shop")
    assert "tenant.set_plan" in listing and "tenant.deleted" in listing


def test_audit_since_filters_and_bad_input_is_a_clear_error():
    record_audit(action="test.old", tenant="acme", target="x")
    assert [e["action"] for e in audit_json("acme", "--since", "1h", "--json")][
        -1
    ] == "test.old"
    assert audit_json("acme", "--since", "2999-01-01", "--json") == []
    with pytest.raises(CommandError, match="--since takes"):
        run("tenants", "audit", "--since", "yesterday-ish")
    with pytest.raises(CommandError, match="No tenant and no audit entries"):
        run("tenants", "audit", "nosuchtenant")


def test_entries_cannot_be_changed_or_deleted():
    entry = record_audit(action="test.append_only", tenant="acme", after={"a": 1})
    entry.action = "tampered"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).update(action="tampered")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).delete()
    # and the database refuses it too, whoever asks
    for statement in (
        "UPDATE tenants_auditentry SET action = 'tampered' WHERE id = %s",
        "DELETE FROM tenants_auditentry WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement, [entry.pk])
    assert AuditEntry.objects.get(pk=entry.pk).action == "test.append_only"


def test_failed_login_is_recorded_with_address_and_without_the_password():
    response = Client(HTTP_HOST="acme.localhost", REMOTE_ADDR="203.0.113.9").post(
        "/admin/login/", {"username": "admin", "password": "wrong-guess-123"}
    )
    assert response.status_code == 200
    entry = AuditEntry.objects.filter(action="login.failed").latest("id")
    assert entry.tenant_schema == "acme"
    assert entry.ip == "203.0.113.9"
    assert entry.after == {"username": "admin"}
    assert "wrong-guess-123" not in json.dumps(
        [entry.before, entry.after, entry.target]
    )


def test_user_and_permission_changes_are_recorded_without_password_hashes():
    with schema_context("globex"):
        user = get_user_model().objects.create_user(
            username="newbie", email="n@globex.localhost", password="s3cret-pass-1"
        )
        user.is_superuser = True
        user.save()
        user.set_password("another-pass-2")
        user.save()
        group = Group.objects.create(name="Auditors")
        user.groups.add(group)
        user.delete()
    entries = AuditEntry.objects.filter(
        tenant_schema="globex", target__in=["user newbie", "group Auditors"]
    ).order_by("id")
    actions = [e.action for e in entries]
    assert actions == [
        "user.created",
        "user.changed",
        "user.password_changed",
        "group.created",
        "permissions.add",
        "user.deleted",
    ]
    changed = entries[1]
    assert changed.before["is_superuser"] is False
    assert changed.after["is_superuser"] is True
    dumped = json.dumps([[e.before, e.after] for e in entries])
    assert "pbkdf2" not in dumped and "md5$" not in dumped and "s3cret" not in dumped
    assert entries[4].after == {"relation": "user_groups", "items": ["Auditors"]}


def _admin_client(host: str, slug: str) -> Client:
    client = Client(HTTP_HOST=host)
    response = client.post(
        "/admin/login/", {"username": "admin", "password": f"{slug}-admin-demo"}
    )
    assert response.status_code == 302
    return client


def test_a_tenant_admin_sees_only_its_own_entries():
    record_audit(action="test.mine", tenant="acme", target="acme-only-marker")
    record_audit(action="test.theirs", tenant="globex", target="globex-only-marker")
    record_audit(action="plan.updated", tenant="", target="fleet-wide-marker")

    page = _admin_client("acme.localhost", "acme").get("/admin/audit-log/")

    assert page.status_code == 200
    body = page.content.decode()
    assert "acme-only-marker" in body
    assert "globex-only-marker" not in body
    assert "fleet-wide-marker" not in body


def test_editors_who_are_not_admins_cannot_read_the_audit_log():
    client = Client(HTTP_HOST="acme.localhost")
    login = client.post(
        "/admin/login/", {"username": "editor", "password": "acme-editor-demo"}
    )
    assert login.status_code == 302
    response = client.get("/admin/audit-log/")
    assert response.status_code in {302, 403}


def test_wagtail_page_permission_changes_are_recorded():
    from django.contrib.auth.models import Permission
    from wagtail.models import GroupPagePermission, Page

    with schema_context("acme"):
        group = Group.objects.create(name="Reviewers")
        grant = GroupPagePermission.objects.create(
            group=group,
            page=Page.objects.get(depth=2),
            permission=Permission.objects.get(codename="publish_page"),
        )
        grant.delete()
    entries = list(
        AuditEntry.objects.filter(
            tenant_schema="acme", action__startswith="permissions.object"
        ).order_by("id")
    )
    assert [e.action for e in entries][-2:] == [
        "permissions.object_added",
        "permissions.object_removed",
    ]
    assert entries[-1].before["permission"] == "publish_page"
    assert entries[-1].target == "group Reviewers"


def test_failed_api_authentication_is_recorded_and_still_a_4xx():
    import base64

    credentials = base64.b64encode(b"admin:not-the-password").decode()
    response = Client(HTTP_HOST="globex.localhost", REMOTE_ADDR="192.0.2.4").post(
        "/api/v2/articles/",
        {"title": "x"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {credentials}",
    )

    assert response.status_code in (401, 403)
    entry = AuditEntry.objects.filter(action="login.failed").latest("id")
    assert (entry.tenant_schema, entry.source, entry.ip) == (
        "globex",
        "api",
        "192.0.2.4",
    )
