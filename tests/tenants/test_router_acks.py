"""Routers acknowledge in the directory the map they route by, and a move waits for
every live router to pass its switch before the source lets the tenant go.

On the test database's own ``cms_directory`` schema; the move waiting for a router
that lags, on two real pods: tests/tenants/test_pods.py."""

import datetime as dt
import threading
import time

import psycopg
import pytest

from tenants.pods import directory
from tests import integration

pytestmark = pytest.mark.django_db


@pytest.fixture
def directory_url(db):
    url = integration.test_database_url()
    with directory.connect(url):
        pass  # the schema created
    yield url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM cms_directory.routers")


@pytest.fixture
def acks(settings, directory_url):
    settings.CMS_DIRECTORY_URL = directory_url
    return directory_url


def _now(url: str) -> dt.datetime:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT now()").fetchone()[0]


def test_no_router_is_no_wait(acks):
    started = time.monotonic()
    assert directory.wait_for_routers(_now(acks), timeout=5) == []
    assert time.monotonic() - started < 1


def test_a_live_router_behind_the_switch_is_waited_for_then_named(acks):
    directory.router_synced("edge-a", _now(acks) - dt.timedelta(seconds=1))
    directory.router_synced("edge-b", _now(acks))
    switched_at = _now(acks)
    started = time.monotonic()
    behind = directory.wait_for_routers(switched_at, timeout=0.5)
    assert behind == ["edge-a", "edge-b"]
    assert time.monotonic() - started >= 0.5


def test_the_wait_ends_when_every_router_has_synced_past_the_switch(acks):
    directory.router_synced("edge-a", _now(acks))
    switched_at = _now(acks)

    def sync_later() -> None:
        time.sleep(0.3)
        directory.router_synced("edge-a", _now(acks))

    thread = threading.Thread(target=sync_later)
    thread.start()
    started = time.monotonic()
    assert directory.wait_for_routers(switched_at, timeout=10) == []
    thread.join()
    assert 0.3 <= time.monotonic() - started < 5


def test_an_older_acknowledgement_never_moves_a_router_back(acks):
    directory.router_synced("edge-a", _now(acks))
    switched_at = _now(acks)
    directory.router_synced("edge-a", _now(acks))
    directory.router_synced("edge-a", switched_at - dt.timedelta(seconds=2))
    assert directory.wait_for_routers(switched_at, timeout=0) == []


def test_a_silent_router_is_taken_for_stopped_and_a_stopped_one_forgotten(acks):
    stale = _now(acks) - dt.timedelta(seconds=directory.ROUTER_LIVE_SECONDS + 1)
    directory.router_synced("edge-gone", stale)
    directory.router_synced("edge-a", _now(acks))
    switched_at = _now(acks)
    assert directory.wait_for_routers(switched_at, timeout=0) == ["edge-a"]
    directory.router_stopped("edge-a")
    assert directory.wait_for_routers(switched_at, timeout=0) == []
