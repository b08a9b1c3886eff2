"""Metrics across processes: a 2-worker gunicorn pool and a Celery worker write to one
multiprocess directory, and one scrape adds every process's figures up exactly."""

import re
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import override_settings
from django_tenants.utils import schema_context

from tenants.jobs import fair_queue
from tests.conftest import ACME_HOST, GLOBEX_HOST
from tests.integration import (
    REPO_ROOT,
    free_port,
    process_env,
    stop_process,
    wait_for,
)

TOKEN = "pool-scrape-token"


@pytest.fixture
def committed(django_db_blocker):
    with django_db_blocker.unblock():
        yield
        connection.set_schema_to_public()


def _scrape(port: int) -> str:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "GET",
            "/metrics",
            headers={"Host": "localhost", "Authorization": f"Bearer {TOKEN}"},
        )
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status == 200, body
        return body
    finally:
        conn.close()


def _sample(body: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in body.splitlines():
        match = re.match(r"^(\w+)\{(.*)\} (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = ",".join(sorted(match.group(2).split(",")))
        if found == wanted:
            return float(match.group(3))
    return 0.0


def _get(port: int, host: str, path: str = "/") -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host, "Connection": "close"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _pids(directory) -> set[str]:
    return {p.stem.rsplit("_", 1)[-1] for p in directory.glob("counter_*.db")}


def test_counts_add_up_exactly_across_gunicorn_workers_and_a_celery_worker(
    committed, tmp_path
):
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = process_env(
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        CMS_METRICS_TOKEN=TOKEN,
        CMS_METRICS_LABEL_REFRESH_SECONDS="0",
        GUNICORN_ACCESSLOG="/dev/null",
    )
    queue = f"obs-metrics-{uuid.uuid4().hex[:6]}"
    env["CMS_JOBS_QUEUE"] = queue  # the worker takes the fair queue's tokens there
    worker_log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "cms_project", "worker",
            "--pool", "prefork", "--concurrency", "1", "-Q", queue,
            "--loglevel", "INFO", "--without-gossip", "--without-mingle",
        ],
        cwd=REPO_ROOT, env=env, stdout=worker_log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    port = free_port()
    from cms_project import devstack

    web = devstack.start_gunicorn(
        port, env=env, log_path=tmp_path / "gunicorn.log", workers=2
    )
    try:
        # warm up: both tenants enter the shared top list and both workers have read
        # it (a worker labels by the list as it last read it), so both are labelled
        def warm() -> bool:
            with ThreadPoolExecutor(max_workers=4) as pool:
                hosts = [ACME_HOST, GLOBEX_HOST] * 4
                assert set(pool.map(lambda host: _get(port, host), hosts)) == {200}
            return len(_pids(metrics_dir)) >= 2

        wait_for(warm, timeout=30, what="both gunicorn workers to serve requests")
        for _ in range(2):
            assert _get(port, ACME_HOST) == 200  # one more refresh in each worker
        before = _scrape(port)

        # concurrent, so that both sync workers take some (one at a time could all
        # land on the same worker)
        requests = (
            [(ACME_HOST, "/", 200)] * 40
            + [(GLOBEX_HOST, "/", 200)] * 25
            + [(ACME_HOST, "/no-such-page/", 404)] * 5
        )
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(
                pool.map(lambda r: (_get(port, r[0], r[1]), r[2]), requests)
            )
        assert all(got == expected for got, expected in statuses), statuses

        assert len(_pids(metrics_dir)) >= 2, "both gunicorn workers served requests"

        def delta(name, **labels):
            return _sample(after, name, **labels) - _sample(before, name, **labels)

        # A worker counts a request once its response is sent, so the scrape (served
        # by the other worker) may briefly run ahead of the last count.
        def settled():
            nonlocal after
            after = _scrape(port)
            return delta("cms_request_duration_seconds_count", tenant="acme") >= 45

        after = None
        wait_for(settled, timeout=10, what="the last requests to be counted")

        assert delta("cms_requests_total", tenant="acme", status_class="2xx") == 40
        assert delta("cms_requests_total", tenant="globex", status_class="2xx") == 25
        assert delta("cms_requests_total", tenant="acme", status_class="4xx") == 5
        assert delta("cms_request_duration_seconds_count", tenant="acme") == 45
        assert _sample(after, "cms_requests_in_flight", tenant="acme") == 0

        # a publish job run by the Celery worker, metered where it runs, shows up
        # in the same scrape
        from content.jobs import enqueue_job

        with override_settings(CMS_JOBS_QUEUE=queue), schema_context("acme"):
            enqueue_job(kind="publish", args={"page_id": 987_654_321})
        wait_for(
            lambda: (
                _sample(
                    _scrape(port),
                    "cms_publish_jobs_total",
                    tenant="acme",
                    outcome="failed",
                )
                == 1
            ),
            timeout=60,
            what=f"the worker's publish job in the scrape (log: {worker_log})",
        )
    finally:
        stop_process(web)
        stop_process(worker)
        with override_settings(CMS_JOBS_QUEUE=queue):
            fair_queue.clear()
