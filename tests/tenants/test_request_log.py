"""Request ids and the structured access log: every answer is logged with its tenant,
and the request id follows a task into a real worker's log lines."""

import json
import logging
import uuid

import pytest
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context

from tenants.observability import log_context
from tenants.observability.log_context import JsonFormatter, RequestContextFilter
from tests.integration import wait_for


def _access_events(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "cms.access"]


def test_a_valid_request_id_is_echoed(acme_client):
    response = acme_client.get("/", HTTP_X_REQUEST_ID="req-42.abc:1")

    assert response.status_code == 200
    assert response["X-Request-ID"] == "req-42.abc:1"


@pytest.mark.parametrize(
    "bad", ["has spaces", 'quote"and;semicolon', "x" * 129, "line\nbreak", ""]
)
def test_an_unsafe_or_missing_request_id_is_replaced(acme_client, bad):
    response = acme_client.get("/", HTTP_X_REQUEST_ID=bad)

    returned = response["X-Request-ID"]
    assert returned != bad
    assert len(returned) == 32 and int(returned, 16) >= 0


def test_a_made_up_request_id_is_a_uuid4_in_hex():
    """Made without a ``UUID`` object (log_context.new_request_id): still exactly
    the form ``uuid.uuid4().hex`` has, version and variant bits included."""
    made = {log_context.new_request_id() for _ in range(2000)}

    assert len(made) == 2000
    for request_id in made:
        parsed = uuid.UUID(hex=request_id)
        assert parsed.hex == request_id
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)


def test_each_request_gets_its_own_id(acme_client):
    first = acme_client.get("/")["X-Request-ID"]
    second = acme_client.get("/")["X-Request-ID"]

    assert first != second


def test_access_event_carries_tenant_request_user_and_timing(acme_client, caplog):
    caplog.set_level(logging.INFO, logger="cms.access")

    acme_client.get("/", HTTP_X_REQUEST_ID="trace-me")

    (event,) = _access_events(caplog)
    assert event.tenant == "acme"
    assert event.request_id == "trace-me"
    assert event.user_id == "-"
    assert event.method == "GET"
    assert event.path == "/"
    assert event.status == 200
    assert event.duration_ms > 0


def test_logged_in_users_id_is_logged(acme_client, caplog):
    from django.contrib.auth import get_user_model

    login = acme_client.post(
        "/admin/login/", {"username": "admin", "password": "acme-admin-demo"}
    )
    assert login.status_code == 302
    with schema_context("acme"):
        admin = get_user_model().objects.get(username="admin")
    caplog.set_level(logging.INFO, logger="cms.access")
    caplog.clear()

    acme_client.get("/admin/")

    (event,) = _access_events(caplog)
    assert event.user_id == str(admin.pk)
    assert event.tenant == "acme"


def test_early_answers_are_logged_too(db, caplog):
    caplog.set_level(logging.INFO, logger="cms.access")

    unknown = Client(HTTP_HOST="nobody.localhost").get("/", HTTP_X_REQUEST_ID="u-1")
    Client(HTTP_HOST="localhost").get("/")

    assert unknown.status_code == 404
    assert unknown["X-Request-ID"] == "u-1"
    events = _access_events(caplog)
    assert [(e.tenant, e.status) for e in events] == [("unknown", 404), ("public", 200)]


def test_suspended_tenant_answer_is_logged_with_the_tenant(acme_client, caplog):
    from tenants.provisioning.lifecycle import tenant_set_status

    tenant_set_status(slug="acme", status="suspended")
    caplog.set_level(logging.INFO, logger="cms.access")

    response = acme_client.get("/")

    assert response.status_code == 503
    (event,) = _access_events(caplog)
    assert (event.tenant, event.status) == ("acme", 503)


def test_log_lines_inside_a_request_carry_tenant_and_id(acme_client, monkeypatch):
    seen = []

    def acquire_slot(schema_name, cap):
        seen.append((log_context.tenant_var.get(), log_context.request_id_var.get()))
        return "token"

    monkeypatch.setattr("tenants.request_path.middleware.acquire_slot", acquire_slot)
    monkeypatch.setattr("tenants.request_path.middleware.release_slot", lambda *a: None)

    acme_client.get("/search/", {"q": "rockets"}, HTTP_X_REQUEST_ID="inside-1")

    assert seen == [("acme", "inside-1")]
    assert log_context.tenant_var.get() == "-"


def test_json_formatter_writes_one_event_per_line():
    record = logging.LogRecord("x.y", logging.WARNING, "f", 1, "a\nb %s", ("c",), None)
    record.status = 503
    tokens = log_context.bind(request_id="rid-9", tenant="globex", user_id="7")
    try:
        RequestContextFilter().filter(record)
        line = JsonFormatter().format(record)
    finally:
        log_context.unbind(tokens)

    assert "\n" not in line
    event = json.loads(line)
    assert event["message"] == "a\nb c"
    assert event["level"] == "WARNING"
    assert (event["tenant"], event["request_id"], event["user_id"]) == (
        "globex",
        "rid-9",
        "7",
    )
    assert event["status"] == 503


@pytest.fixture
def committed(django_db_blocker):
    with django_db_blocker.unblock():
        yield
        connection.set_schema_to_public()


def _worker_events(log_path, request_id: str) -> list[dict]:
    events = []
    for line in log_path.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("request_id") == request_id:
            events.append(event)
    return events


def test_request_id_and_tenant_follow_a_task_into_a_real_worker(
    committed, celery_worker
):
    """A job carries the request id of the request that queued it into the worker's
    log lines, under the job's own tenant."""
    from content.jobs import enqueue_job

    request_id = f"trace-{uuid.uuid4().hex[:8]}"
    missing_page = 987_654_321
    tokens = log_context.bind(request_id=request_id, tenant="acme")
    try:
        with schema_context("acme"):
            job = enqueue_job(kind="publish", args={"page_id": missing_page})
    finally:
        log_context.unbind(tokens)

    events = wait_for(
        lambda: [
            e
            for e in _worker_events(celery_worker, request_id)
            if e["message"] == f"job {job.pk} of acme: failed"
        ],
        timeout=60,
        what=f"the worker's log line for request {request_id} in {celery_worker}",
    )
    assert events[0]["tenant"] == "acme"


def test_a_fair_queue_job_logs_under_its_own_tenant(committed, celery_worker):
    """A token is anonymous: the job it runs is logged under the job's tenant and the
    request id recorded with the job, never under whatever sent the token."""
    from content.jobs import enqueue_job

    queuing_request = f"queuing-{uuid.uuid4().hex[:8]}"
    tokens = log_context.bind(request_id=queuing_request, tenant="acme")
    try:
        with schema_context("globex"):
            job = enqueue_job(kind="test.noop", args={})
    finally:
        log_context.unbind(tokens)

    def job_line():
        for line in celery_worker.read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("message") == (
                f"job {job.pk} of globex: done"
            ):
                return event
        return None

    event = wait_for(job_line, timeout=60, what=f"job {job.pk} in {celery_worker}")
    assert event["tenant"] == "globex"
    assert event["request_id"] == queuing_request


def test_planned_refusals_leave_the_access_event_but_no_django_warning(
    acme_client, caplog
):
    from django.core.management import call_command

    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=1")
    caplog.set_level(logging.INFO)

    acme_client.get("/")
    refused = acme_client.get("/")

    assert refused.status_code == 429
    assert [r.status for r in _access_events(caplog)] == [200, 429]
    assert not [r for r in caplog.records if r.name == "django.request"]
