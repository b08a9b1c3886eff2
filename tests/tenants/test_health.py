"""Liveness and readiness probes on every host, and readiness failures by part."""

import copy
import json
import logging

import pytest
from django.conf import settings
from django.test import Client, override_settings

from tenants.observability import health
from tenants.observability.health import forget_readiness
from tests.integration import free_port

HOSTS = ["localhost", "acme.localhost", "globex.localhost"]


@pytest.fixture(autouse=True)
def _fresh_readiness():
    """Each test sees its own services, not the last test's kept result."""
    forget_readiness()
    yield
    forget_readiness()


@pytest.mark.parametrize("host", HOSTS)
def test_healthz_answers_on_every_host(db, host):
    response = Client(HTTP_HOST=host).get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


def test_healthz_needs_no_database(db, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = Client(HTTP_HOST="localhost").get("/healthz")
    assert response.status_code == 200


@pytest.mark.parametrize("host", HOSTS)
def test_readyz_reports_every_part_ready(db, host):
    response = Client(HTTP_HOST=host).get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "ok", "broker": "ok"},
        "breakers": {"database": "closed", "redis": "closed", "broker": "closed"},
    }


def _closed_port() -> int:
    return free_port()  # nothing listens there


def test_readyz_names_an_unreachable_redis(db, caplog):
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    with override_settings(REDIS_URL=url):
        response = Client(HTTP_HOST="localhost").get("/readyz")

    assert response.status_code == 503
    body = json.loads(response.content)
    assert body["failing"] == ["redis"]
    assert body["checks"] == {"database": "ok", "redis": "fail", "broker": "ok"}
    assert url not in response.content.decode()  # details go to the log only
    assert any("readiness check redis failed" in r.getMessage() for r in caplog.records)


def test_readyz_names_an_unreachable_broker(db):
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    with override_settings(CELERY_BROKER_URL=url):
        response = Client(HTTP_HOST="acme.localhost").get("/readyz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_readyz_names_an_unreachable_database(db, caplog):
    caplog.set_level(logging.WARNING)
    databases = copy.deepcopy(settings.DATABASES)
    databases["default"].update(HOST="127.0.0.1", PORT=str(_closed_port()))
    with override_settings(DATABASES=databases):
        response = Client(HTTP_HOST="localhost").get("/readyz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]


def test_probes_are_not_admitted_logged_or_rate_limited(
    acme_client, monkeypatch, caplog
):
    taken = []
    monkeypatch.setattr(
        "tenants.request_path.middleware.acquire_slot",
        lambda *args: taken.append(args) or "t",
    )
    monkeypatch.setattr(
        "tenants.request_path.middleware.release_slot", lambda *args: None
    )
    caplog.set_level(logging.INFO, logger="cms.access")

    assert acme_client.get("/healthz").status_code == 200
    assert acme_client.get("/readyz").status_code == 200
    assert taken == []
    assert not [r for r in caplog.records if r.name == "cms.access"]

    acme_client.get("/search/", {"q": "rockets"})  # admitted and logged
    assert len(taken) == 1
    assert len([r for r in caplog.records if r.name == "cms.access"]) == 1


def test_readyz_keeps_its_result_briefly(db, monkeypatch, settings):
    """A flood of probes costs one round of checks per interval, not one per call."""
    runs = []
    monkeypatch.setattr(
        health,
        "READINESS_CHECKS",
        {"database": lambda: runs.append("database")},
    )
    client = Client(HTTP_HOST="acme.localhost")

    settings.CMS_READINESS_CACHE_SECONDS = 60
    answers = [client.get("/readyz").status_code for _ in range(20)]
    assert answers == [200] * 20
    assert runs == ["database"]

    settings.CMS_READINESS_CACHE_SECONDS = 0  # expired: checked again
    client.get("/readyz")
    assert runs == ["database", "database"]


def test_a_failure_is_kept_too_and_clears_after_the_interval(db, monkeypatch, settings):
    state = {"up": False}

    def database() -> None:
        if not state["up"]:
            raise ConnectionError("down")

    monkeypatch.setattr(health, "READINESS_CHECKS", {"database": database})
    settings.CMS_READINESS_CACHE_SECONDS = 60
    client = Client(HTTP_HOST="localhost")

    assert client.get("/readyz").status_code == 503
    state["up"] = True
    assert client.get("/readyz").status_code == 503  # kept
    forget_readiness()
    assert client.get("/readyz").status_code == 200
