"""A tenant creation that fails at any step leaves nothing of the tenant behind."""

import pytest
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_exists

from tenants.errors import ProvisioningFailed
from tenants.models import Domain, Tenant
from tenants.provisioning import creation as provisioning
from tests.media import tenant_media_dir

pytestmark = pytest.mark.django_db


def _create() -> provisioning.ProvisionedTenant:
    return provisioning.tenant_create(
        slug="doomed",
        name="Doomed",
        domains=["doomed.localhost", "www.doomed.localhost"],
        plan="free",
        admin_password="doomed-password-1",
    )


def _clone_then_fail(slug: str) -> None:
    real_clone(slug)
    assert schema_exists(slug)  # the failure comes after the schema was written
    raise RuntimeError("disk full")


def _admin_fails(email: str, password_hash: str) -> str:
    raise RuntimeError("users table locked")


real_clone = provisioning.clone_template


@pytest.mark.parametrize(
    ("target", "replacement"),
    [("clone_template", _clone_then_fail), ("_create_admin", _admin_fails)],
)
def test_failure_at_any_step_leaves_nothing(monkeypatch, target, replacement):
    tenants_before = Tenant.objects.count()
    monkeypatch.setattr(provisioning, target, replacement)

    with pytest.raises(ProvisioningFailed, match="'doomed' failed and was rolled back"):
        _create()

    assert connection.schema_name == "public"
    assert Tenant.objects.count() == tenants_before
    assert not Domain.objects.filter(domain__endswith="doomed.localhost").exists()
    assert not schema_exists("doomed")
    assert not tenant_media_dir("doomed").exists()
    assert Client(HTTP_HOST="doomed.localhost").get("/").status_code == 404

    monkeypatch.undo()
    created = _create()  # the same slug and domains are free again

    assert created.tenant.schema_name == "doomed"
    assert Client(HTTP_HOST="doomed.localhost").get("/").status_code == 200


def test_creation_renews_the_connection_every_few_creations(monkeypatch, settings):
    """A connection that cloned many schemas gets slower: every
    ``CMS_PROVISIONING_CONNECTION_CREATIONS`` creations on one connection close it,
    never inside a transaction (the caller's work would be lost)."""
    from types import SimpleNamespace

    settings.CMS_PROVISIONING_CONNECTION_CREATIONS = 2
    fake = SimpleNamespace(in_atomic_block=False, connection=object(), closed=0)

    def close():
        fake.closed += 1
        fake.connection = object()  # the next query connects anew

    fake.close = close
    monkeypatch.setattr(provisioning, "connection", fake)
    monkeypatch.setattr(provisioning, "_creations", {"connection": None, "count": 0})

    for _ in range(5):
        provisioning._retire_aged_connection()
    assert fake.closed == 2

    fake.connection = object()  # closed by something else: counting starts again
    provisioning._retire_aged_connection()
    assert fake.closed == 2

    fake.in_atomic_block = True
    for _ in range(3):
        provisioning._retire_aged_connection()
    assert fake.closed == 2

    fake.in_atomic_block = False
    settings.CMS_PROVISIONING_CONNECTION_CREATIONS = 0
    for _ in range(3):
        provisioning._retire_aged_connection()
    assert fake.closed == 2
