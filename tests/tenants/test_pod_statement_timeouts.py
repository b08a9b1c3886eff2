"""A pod's database with a table locked (a migration): the operator's commands that
read or write its small tables give up instead of hanging.

Each test holds an ``ACCESS EXCLUSIVE`` lock on the table the code needs for 3 s (a
timer ends it, so the old code, which waited, fails the time bound instead of hanging
the suite) with ``POD_STATEMENT_TIMEOUT_MS`` at 300 ms."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg.rows
import pytest
from django.conf import settings

from tenants.pods import directory, placement, plans, registration
from tenants.pods.directory import Pod, PodError
from tests import integration
from tests.integration import other_connection

LOCK_SECONDS = 3


@pytest.fixture
def pod(db, monkeypatch) -> Pod:
    monkeypatch.setattr(directory, "POD_STATEMENT_TIMEOUT_MS", 300)
    return Pod(
        name="locked",
        database_url=integration.test_database_url(),
        redis_url=settings.REDIS_URL,
        web="127.0.0.1:1",
        state="active",
    )


@contextmanager
def locked(table: str) -> Iterator[None]:
    """``table`` locked by another connection for ``LOCK_SECONDS`` at most; the body
    must be done well before the lock ends."""
    holder = other_connection()
    release = threading.Timer(LOCK_SECONDS, holder.rollback)
    try:
        holder.execute(f"LOCK TABLE public.{table} IN ACCESS EXCLUSIVE MODE")
        release.start()
        started = time.monotonic()
        yield
        assert time.monotonic() - started < LOCK_SECONDS - 1
    finally:
        release.cancel()
        release.join()
        holder.rollback()
        holder.close()


def test_placement_counts_a_locked_pod_as_not_answering(pod):
    assert placement.pod_requests(pod) is not None  # reachable, unlocked
    with locked("tenants_usageday"):
        assert placement.pod_requests(pod) is None


def test_registering_a_pod_whose_tables_are_locked_says_so(pod):
    with locked("tenants_tenant"), pytest.raises(PodError) as refused:
        registration.pod_register(
            name="locked",
            database_url=pod.database_url,
            redis_url=pod.redis_url,
            web=pod.web,
        )
    assert "cannot be reached" in str(refused.value)
    assert "statement timeout" in str(refused.value)


def test_a_plan_push_to_a_locked_pod_reports_that_pod(pod, monkeypatch):
    from tenants.models import Plan

    # read beside Django: the test's own transaction must not hold the table
    with other_connection() as reader:
        reader.row_factory = psycopg.rows.dict_row
        stored = reader.execute(
            "SELECT * FROM public.tenants_plan WHERE name = 'free'"
        ).fetchone()
    plan = Plan(**stored)
    monkeypatch.setattr(directory, "pods_list", lambda: [pod])
    monkeypatch.setattr(directory, "local_pod", lambda: "elsewhere")
    monkeypatch.setattr(plans, "tell_routers", lambda change: None)
    with locked("tenants_plan"):
        assert plans.push_plan(plan) == ["locked"]
    with pytest.raises(psycopg.errors.QueryCanceled), locked("tenants_plan"):
        plans._write_plan(pod, plan._meta.db_table, plans._plan_row(plan))
