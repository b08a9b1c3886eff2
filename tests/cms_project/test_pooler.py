"""The pgbouncer launcher (cms_project.pooler) as the provisioning benchmark uses it:
one pooler for several databases, each reached under its own name, and nothing of
it left once stopped."""

import psycopg
import pytest
from django.conf import settings

from cms_project.debian import ToolMissing
from cms_project.pooler import start_pgbouncer
from tests.ci_plugin import tool_unavailable
from tests.integration import free_port

pytestmark = pytest.mark.django_db


def test_one_pooler_reaches_each_database_it_was_started_for_by_name():
    test_db = settings.DATABASES["default"]
    # the server's maintenance database: a second database that always exists
    databases = [test_db, {**test_db, "NAME": "postgres"}]
    try:
        pooler = start_pgbouncer(databases, port=free_port(), pool_size=1)
    except ToolMissing as exc:
        tool_unavailable(f"the pooler launcher test needs pgbouncer: {exc}")
    try:
        for name in (test_db["NAME"], "postgres"):
            with psycopg.connect(pooler.url(name), autocommit=True) as conn:
                seen = conn.execute("SELECT current_database()").fetchone()[0]
            assert seen == name
    finally:
        pooler.stop()
    assert pooler.process.poll() is not None
    assert not pooler.folder.exists()
