"""`manage.py seed_demo` (run by `make up`) is idempotent."""

import pytest
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context
from wagtail.models import Page

from tenants.models import Domain, Tenant

pytestmark = pytest.mark.django_db


def _counts() -> dict:
    counts = {"tenants": Tenant.objects.count(), "domains": Domain.objects.count()}
    for slug in ("acme", "globex"):
        with schema_context(slug):
            counts[slug] = Page.objects.count()
    connection.set_schema_to_public()
    return counts


def test_seeding_twice_creates_no_duplicates(capsys):
    before = _counts()

    call_command("seed_demo")
    call_command("seed_demo")

    assert _counts() == before
    out = capsys.readouterr().out
    assert "editor / acme-editor-demo" in out
    assert "http://globex.localhost:8000/" in out
