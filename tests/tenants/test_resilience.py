"""Dependency outages in one process: breakers, the fast 503, the reserved workers,
and jobs kept while the broker is out (tests/tenants/test_faults.py hangs and kills
real services)."""

import json
import time

import psycopg
import pytest
from django.test import Client, override_settings

from content.models import BackgroundJob
from tenants.jobs import fair_queue
from tenants.observability.metrics import render_metrics
from tenants.resilience import breakers, worker_reserve
from tenants.resilience.breakers import CircuitBreaker, DependencyUnavailable


def open_breaker(breaker: CircuitBreaker) -> None:
    for _ in range(10):
        breaker.failed(RuntimeError("test"))
    assert breaker.state == breakers.OPEN


# --- the breaker itself -----------------------------------------------------------


def test_breaker_opens_fails_fast_then_one_probe_closes_it():
    changes = []
    breaker = CircuitBreaker(
        "thing",
        failures=lambda: 2,
        cooldown=lambda: 0.2,
        on_change=lambda name, state: changes.append(state),
    )
    breaker.before_call()
    breaker.failed(TimeoutError())
    assert breaker.state == breakers.CLOSED  # one failure is not an outage
    breaker.before_call()
    breaker.failed(TimeoutError())
    assert breaker.state == breakers.OPEN

    started = time.perf_counter()
    with pytest.raises(DependencyUnavailable) as refused:
        breaker.before_call()
    assert time.perf_counter() - started < 0.01
    assert 0 < refused.value.retry_after <= 0.2

    time.sleep(0.25)
    breaker.before_call()  # the probe
    assert breaker.state == breakers.HALF_OPEN
    with pytest.raises(DependencyUnavailable):
        breaker.before_call()  # only one probe at a time
    breaker.succeeded()
    assert breaker.state == breakers.CLOSED
    breaker.before_call()
    assert changes == [breakers.OPEN, breakers.HALF_OPEN, breakers.CLOSED]


def test_a_failed_probe_opens_the_breaker_for_another_cooldown():
    breaker = CircuitBreaker("thing", failures=lambda: 1, cooldown=lambda: 0.1)
    breaker.failed(TimeoutError())
    time.sleep(0.15)
    with pytest.raises(ZeroDivisionError), breaker.guard((ZeroDivisionError,)):
        raise ZeroDivisionError
    assert breaker.state == breakers.OPEN
    with pytest.raises(DependencyUnavailable):
        breaker.before_call()


def test_a_failed_cheap_probe_keeps_the_breaker_open_without_a_real_call():
    answers = [False, True]
    breaker = CircuitBreaker("thing", failures=lambda: 1, cooldown=lambda: 0.1)
    breaker.probe = lambda: answers.pop(0)
    breaker.failed(TimeoutError())
    time.sleep(0.15)
    with pytest.raises(DependencyUnavailable):
        breaker.before_call()  # the probe said no: another cool-down
    assert breaker.state == breakers.OPEN
    time.sleep(0.15)
    breaker.before_call()  # the probe said yes: this call decides
    breaker.succeeded()
    assert breaker.state == breakers.CLOSED
    assert answers == []


def test_an_error_the_dependency_answered_does_not_count():
    breaker = CircuitBreaker("thing", failures=lambda: 1, cooldown=lambda: 5)
    with pytest.raises(KeyError), breaker.guard((TimeoutError,)):
        raise KeyError("a bug, not an outage")
    assert breaker.state == breakers.CLOSED


def test_psycopg_internals_the_database_deadline_relies_on():
    """tenants.resilience.database is psycopg's one adapter: fail here first."""
    import inspect

    assert issubclass(psycopg.errors._WaitTimeout, Exception)
    assert "timeout" in inspect.signature(psycopg.Connection.wait).parameters


# --- the database out ---------------------------------------------------------------


def test_database_breaker_open_gives_a_fast_503_with_retry_after(db):
    client = Client(HTTP_HOST="acme.localhost")
    assert client.get("/").status_code == 200  # the host map is loaded
    open_breaker(breakers.database)
    try:
        started = time.perf_counter()
        page = client.get("/search/", {"q": "x"})
        api = client.get("/api/v2/pages/")
        elapsed = time.perf_counter() - started
    finally:
        breakers.reset_all()

    assert elapsed < 0.5
    assert page.status_code == 503
    assert int(page["Retry-After"]) >= 1
    assert "Acme" in page.content.decode()
    assert "try again" in page.content.decode().lower()
    assert api.status_code == 503
    assert json.loads(api.content)["error"] == "temporarily_unavailable"


def test_an_unknown_host_with_the_database_out_gets_a_503_not_a_500(db):
    client = Client(HTTP_HOST="never-seen.localhost", raise_request_exception=False)
    open_breaker(breakers.database)
    try:
        response = client.get("/")
    finally:
        breakers.reset_all()
    assert response.status_code == 503
    assert response["Retry-After"]


def test_readyz_and_metrics_show_an_open_breaker(db, monkeypatch):
    from tenants.observability import health

    checked = []
    monkeypatch.setitem(
        health.READINESS_CHECKS, "redis", lambda: checked.append("redis")
    )
    client = Client(HTTP_HOST="localhost")
    open_breaker(breakers.redis)
    try:
        response = client.get("/readyz")
        metrics = render_metrics().decode()
    finally:
        breakers.reset_all()

    assert checked == []  # an open breaker is reported, not waited on
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["redis"] == "open"
    assert body["breakers"]["redis"] == "open"
    assert 'cms_dependency_breaker_state{dependency="redis"} 2.0' in metrics

    assert client.get("/readyz").json()["breakers"]["redis"] == "closed"
    assert 'cms_dependency_breaker_state{dependency="redis"} 0.0' in (
        render_metrics().decode()
    )


# --- Redis out ------------------------------------------------------------------------


def test_a_new_connection_to_a_hung_redis_meets_the_cheap_probe_not_a_timeout(
    settings,
):
    """A connection dropped by a timeout is made again by the next call. Its
    handshake (CLIENT SETINFO, SELECT) is the connection's own, not a gated command:
    so after a cool-down the cheap probe must run before connecting, or every
    cool-down costs one request a full socket timeout on a Redis that still hangs
    (tests/tenants/test_faults.py saw 0.26 s where the probe takes 0.1 s)."""
    import socket

    from tenants.resilience.redis_client import GuardedConnection, RedisUnavailable
    from tests.integration import free_port

    hung = socket.socket()
    port = free_port()
    hung.bind(("127.0.0.1", port))
    hung.listen(16)  # the kernel accepts; nothing ever answers (a stopped server)
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"  # where the probe looks
    settings.CMS_BREAKER_COOLDOWN_SECONDS = 0.1
    try:
        open_breaker(breakers.redis)
        time.sleep(0.15)  # cooled down: the next call may try
        connection = GuardedConnection(
            host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1
        )
        started = time.perf_counter()
        with pytest.raises(RedisUnavailable):
            connection.connect()
        assert time.perf_counter() - started < 0.5
        assert breakers.redis.state == breakers.OPEN
    finally:
        hung.close()


def test_with_the_redis_breaker_open_pages_are_served_without_touching_redis(
    acme_client, monkeypatch
):
    sent = []
    from redis.connection import AbstractConnection

    original = AbstractConnection.send_packed_command
    monkeypatch.setattr(
        AbstractConnection,
        "send_packed_command",
        lambda self, *a, **k: sent.append(a) or original(self, *a, **k),
    )
    with override_settings(CMS_BREAKER_COOLDOWN_SECONDS=60):
        open_breaker(breakers.redis)
        response = acme_client.get("/")

    assert response.status_code == 200  # fail-open: the limiter is skipped
    assert sent == []  # not a single command waited on a socket


# --- reserved workers -----------------------------------------------------------------


def test_without_a_free_database_slot_a_request_gets_503_but_probes_answer(
    acme_client, tmp_path
):
    with override_settings(
        CMS_DB_SLOTS=1, CMS_DB_SLOTS_DIR=str(tmp_path), CMS_DB_SLOT_WAIT_SECONDS=0.05
    ):
        held = worker_reserve.take_slot()
        assert held not in (None, False)
        try:
            assert worker_reserve.slots_in_use() == 1
            busy = acme_client.get("/search/", {"q": "x"})
            health = acme_client.get("/healthz")
        finally:
            worker_reserve.release_slot(held)
        assert worker_reserve.slots_in_use() == 0
        served = acme_client.get("/search/", {"q": "x"})

    assert busy.status_code == 503
    assert busy["Retry-After"]
    assert health.status_code == 200
    assert served.status_code == 200


def test_a_slot_held_only_for_an_instant_is_taken_without_sleeping(
    settings, tmp_path, monkeypatch, slot_waits
):
    """A render that may give way counts the free slots by locking each for an
    instant; a request waiting for a slot that finds them all taken in that instant
    sweeps once more at once, instead of sleeping 10 ms first."""
    settings.CMS_DB_SLOTS, settings.CMS_DB_SLOTS_DIR = 2, str(tmp_path)
    settings.CMS_DB_SLOT_WAIT_SECONDS = 5
    real_try_lock = worker_reserve._try_lock
    tries = []

    def briefly_taken(path, **kwargs):
        tries.append(path.name)
        if len(tries) <= 2:  # the first sweep finds both slots taken
            return None
        return real_try_lock(path, **kwargs)

    monkeypatch.setattr(worker_reserve, "_try_lock", briefly_taken)
    slot = worker_reserve.take_slot()
    try:
        assert slot not in (None, False)
        assert slot_waits == []
        assert len(tries) == 3
    finally:
        worker_reserve.release_slot(slot)


def test_a_request_waiting_for_a_taken_slot_sleeps_between_sweeps(
    settings, tmp_path, monkeypatch, slot_waits
):
    """Only the first retry is at once: a waiting request must not spin on the
    locks (a worker burning a core while it waits takes it from those rendering)."""
    settings.CMS_DB_SLOTS, settings.CMS_DB_SLOTS_DIR = 1, str(tmp_path)
    settings.CMS_DB_SLOT_WAIT_SECONDS = 0.05
    real_try_lock = worker_reserve._try_lock
    tries = []

    def counted_try_lock(path, **kwargs):
        tries.append(path.name)
        return real_try_lock(path, **kwargs)

    held = worker_reserve.take_slot()
    monkeypatch.setattr(worker_reserve, "_try_lock", counted_try_lock)
    try:
        assert worker_reserve.take_slot() is False  # none freed up in time
    finally:
        worker_reserve.release_slot(held)

    # one sweep of the one slot, one more at once, then one after each sleep
    assert slot_waits and all(seconds == 0.01 for seconds in slot_waits)
    assert len(tries) <= len(slot_waits) + 2


def test_slots_in_use_counts_held_slots_and_creates_none(settings, tmp_path):
    settings.CMS_DB_SLOTS, settings.CMS_DB_SLOTS_DIR = 3, str(tmp_path)
    assert worker_reserve.slots_in_use() == 0
    assert list(tmp_path.iterdir()) == []  # a probe of /readyz creates no files
    held = [worker_reserve.take_slot() for _ in range(2)]
    try:
        assert worker_reserve.slots_in_use() == 2
    finally:
        for descriptor in held:
            worker_reserve.release_slot(descriptor)
    assert worker_reserve.slots_in_use() == 0


# --- jobs while the broker is out -------------------------------------------------


def test_a_job_whose_token_cannot_be_sent_is_kept_and_the_watchdog_sends_it(
    db, monkeypatch, django_capture_on_commit_callbacks
):
    from django_tenants.utils import schema_context

    from content import jobs

    fair_queue.clear()
    sent = []

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    # tokens are sent by name through the app (content.jobs.send_tokens)
    monkeypatch.setattr(jobs.app, "send_task", broker_down)
    try:
        with (
            schema_context("acme"),
            django_capture_on_commit_callbacks(execute=True),
        ):
            job = jobs.enqueue_job(kind="test.noop", args={})
        with schema_context("acme"):
            assert BackgroundJob.objects.get(pk=job.pk).status == "queued"
        assert fair_queue.pending(schema="acme") == 1

        monkeypatch.setattr(jobs.app, "send_task", lambda *a, **k: sent.append(k))
        breakers.reset_all()
        resent = jobs.resend_missing_tokens()
        assert resent["publishing"] >= 1 and resent["webhooks"] >= 1
        publishing = [k for k in sent if k["kwargs"] == {"lane": "publishing"}]
        assert publishing and all(k["queue"] == "tests" for k in publishing)
    finally:
        fair_queue.clear()


def test_with_redis_out_a_job_is_refused_clearly_and_nothing_is_stored(db):
    from django_tenants.utils import schema_context

    from content import jobs

    with override_settings(CMS_BREAKER_COOLDOWN_SECONDS=60):
        open_breaker(breakers.redis)
        with schema_context("acme"):
            before = BackgroundJob.objects.count()
            with pytest.raises(jobs.EnqueueFailed, match="job queue is unavailable"):
                jobs.enqueue_job(kind="publish", args={"page_id": 1})
            assert BackgroundJob.objects.count() == before
