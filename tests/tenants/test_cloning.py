"""A clone is the template, structure and rows, under another name."""

import pytest
from django.db import connection

from tenants.provisioning.cloning import clone_template, template_snapshot

pytestmark = pytest.mark.django_db

CATALOG = {
    "columns": """
        SELECT table_name, column_name, data_type, is_nullable,
               regexp_replace(coalesce(column_default, ''), %(schema)s || '\\.', '')
        FROM information_schema.columns WHERE table_schema = %(schema)s""",
    # A partial index's predicate is re-parsed into an equivalent but differently
    # spelled expression, so predicates are compared by presence only.
    "indexes": """
        SELECT tablename, indexdef LIKE '%% WHERE %%',
               regexp_replace(
                   regexp_replace(indexdef, ' WHERE .*$', ''),
                   %(schema)s || '\\.', '', 'g')
        FROM pg_indexes WHERE schemaname = %(schema)s""",
    "constraints": """
        SELECT conname, contype, condeferrable,
               regexp_replace(pg_get_constraintdef(c.oid), %(schema)s || '\\.', '', 'g')
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = %(schema)s""",
    "sequences": """
        SELECT sequencename, last_value
        FROM pg_sequences WHERE schemaname = %(schema)s""",
}


def _describe(schema: str) -> dict[str, set]:
    description = {}
    with connection.cursor() as cursor:
        for name, query in CATALOG.items():
            cursor.execute(query, {"schema": schema})
            description[name] = set(cursor.fetchall())
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema]
        )
        counts = {}
        for (table,) in cursor.fetchall():
            cursor.execute(f'SELECT count(*) FROM "{schema}"."{table}"')
            counts[table] = cursor.fetchone()[0]
        description["rows"] = set(counts.items())
    return description


def test_clone_matches_the_template():
    assert template_snapshot() is not None  # the fast path, not the fallback

    clone_template("clonecheck")

    template, clone = _describe("_template"), _describe("clonecheck")
    for aspect in ("columns", "indexes", "constraints", "sequences", "rows"):
        assert clone[aspect] == template[aspect], aspect
    assert len(clone["columns"]) > 300


def test_clone_references_only_its_own_schema():
    clone_template("selfcontained")

    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT count(*) FROM pg_constraint c
               JOIN pg_namespace n ON n.oid = c.connamespace
               WHERE n.nspname = 'selfcontained' AND c.contype = 'f'
                 AND c.confrelid::regclass::text NOT LIKE 'selfcontained.%%'""",
        )
        foreign_refs = cursor.fetchone()[0]
        cursor.execute(
            """SELECT count(*) FROM information_schema.columns
               WHERE table_schema = 'selfcontained'
                 AND column_default LIKE '%%_template%%'"""
        )
        template_defaults = cursor.fetchone()[0]

    assert foreign_refs == 0
    assert template_defaults == 0
