"""Migrations reach every tenant: new tenants are complete, behind tenants catch up."""

import pytest
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from tenants.provisioning.creation import tenant_create
from tenants.provisioning.fleet import migrate_fleet, schemas_behind

pytestmark = pytest.mark.django_db

LATEST = ("content", "0002_article_publication_date_index")
PREVIOUS = "0001_initial"


def _roll_back_content(schema: str) -> None:
    """Simulate a schema that has not had the newest content migration yet."""
    call_command(
        "migrate_schemas",
        "content",
        PREVIOUS,
        schema_name=schema,
        tenant=True,
        interactive=False,
        verbosity=0,
    )
    connection.set_schema_to_public()


def _applied(schema: str) -> set[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT app, name FROM "{schema}".django_migrations')
        return set(cursor.fetchall())


def _has_index(schema: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_indexes WHERE schemaname = %s "
            "AND tablename = 'content_articlepage' AND indexdef LIKE %s",
            [schema, "%(publication_date)%"],
        )
        return cursor.fetchone() is not None


def test_tenant_created_after_a_new_migration_has_it(acme_client):
    _roll_back_content("_template")
    assert LATEST not in _applied("_template")

    tenant_create(
        slug="latecomer", name="Late", domains=["late.localhost"], plan="free"
    )

    assert _applied("latecomer") == _applied("acme")
    assert LATEST in _applied("latecomer")
    assert _has_index("latecomer")


def test_clone_holds_nothing_of_other_tenants():
    tenant_create(slug="fresh", name="Fresh", domains=["fresh.localhost"], plan="free")

    with schema_context("fresh"):
        from django.contrib.auth import get_user_model
        from wagtail.models import Page, Site

        titles = set(Page.objects.values_list("title", flat=True))
        users = set(get_user_model().objects.values_list("username", flat=True))
        hosts = set(Site.objects.values_list("hostname", flat=True))
    assert titles == {"Root", "Fresh"}
    assert users == {"admin"}
    assert hosts == {"fresh.localhost"}


def test_fleet_migrates_the_tenants_behind_and_skips_the_rest():
    _roll_back_content("globex")
    assert schemas_behind(["acme", "globex"]) == ["globex"]

    result = migrate_fleet(parallel=1, schemas=["acme", "globex"])

    assert result.migrated == ["globex"]
    assert result.up_to_date == 1
    assert result.failed == {}
    assert _has_index("globex")
    assert schemas_behind(["acme", "globex"]) == []


def test_failed_tenant_is_reported_and_a_rerun_resumes(monkeypatch):
    _roll_back_content("acme")
    _roll_back_content("globex")
    import tenants.provisioning.fleet as fleet

    real = fleet._migrate_one

    def flaky(schema):
        if schema == "globex":
            return schema, "OperationalError: simulated outage"
        return real(schema)

    monkeypatch.setattr(fleet, "_migrate_one", flaky)
    first = migrate_fleet(parallel=1, schemas=["acme", "globex"])
    monkeypatch.setattr(fleet, "_migrate_one", real)
    second = migrate_fleet(parallel=1, schemas=["acme", "globex"])

    assert first.migrated == ["acme"]
    assert first.failed == {"globex": "OperationalError: simulated outage"}
    assert second.migrated == ["globex"]  # acme is not redone
    assert second.up_to_date == 1
