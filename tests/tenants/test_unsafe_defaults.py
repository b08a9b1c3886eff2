"""Names checked whole (no trailing newline slips through a ``$``), and tenant
archives that are owner-only and carry no sessions."""

import os
import stat
import tarfile

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import schema_context

from tenants.errors import InvalidDomain, InvalidSlug
from tenants.observability.log_context import accepted_request_id
from tenants.provisioning.portability import tenant_export
from tenants.registry.validation import normalize_domain, validate_slug


@pytest.mark.parametrize("slug", ["shop\n", "shop\r\n", "shop\nx"])
def test_a_slug_with_a_newline_is_refused(slug):
    with pytest.raises(InvalidSlug):
        validate_slug(slug)


def test_create_refuses_a_slug_with_a_trailing_newline(db):
    with pytest.raises(CommandError, match="Invalid slug"):
        call_command(
            "tenants",
            "create",
            "shop\n",
            "--name",
            "Shop",
            "--domain",
            "s.localhost",
            "--plan",
            "free",
        )


def test_a_host_label_with_a_newline_is_refused():
    with pytest.raises(InvalidDomain):
        normalize_domain("shop\n.example.com")


def test_a_request_id_with_a_newline_is_replaced():
    assert accepted_request_id("abc\n") != "abc\n"


@pytest.fixture
def archive_with_a_session(db, tmp_path):
    with schema_context("acme"):
        session = SessionStore()
        session["_auth_user_id"] = "1"
        session.create()
        key = session.session_key
    connection.set_schema_to_public()
    previous = os.umask(0o022)  # what would make the file world-readable
    try:
        tenant_export(slug="acme", output=tmp_path / "acme.tar.gz")
    finally:
        os.umask(previous)
    return tmp_path / "acme.tar.gz", key


def test_export_is_owner_only(archive_with_a_session):
    path, _ = archive_with_a_session
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_export_leaves_sessions_out(archive_with_a_session):
    path, key = archive_with_a_session
    with tarfile.open(path, "r:gz") as archive:
        names = archive.getnames()
        contents = b"".join(
            archive.extractfile(member).read()
            for member in archive.getmembers()
            if member.isfile() and member.name.startswith("data/")
        )
    assert "data/django_session.copy" not in names
    assert "data/auth_user.copy" in names  # users stay importable
    assert key.encode() not in contents
