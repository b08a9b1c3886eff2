"""Publishing through the fair queue on a real Celery worker: conflicts, the
permission re-check, slicing fairness, the plan's publish_concurrency and the request
id of the click in the worker's log lines."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django_tenants.utils import schema_context
from wagtail.models import Page, PageLogEntry, Site

from cms_project.celery import app
from content.jobs import enqueue_job
from content.models import ArticlePage, BackgroundJob
from content.publish_jobs import queue_publish, queue_subtree
from tenants.jobs import fair_queue
from tenants.models import Plan
from tenants.observability import log_context
from tests.integration import REPO_ROOT, process_env, stop_process, wait_for

Status = BackgroundJob.Status
QUEUE = "tests-publish"
SLICE = 5


@pytest.fixture(scope="module")
def worker(django_db_setup, tmp_path_factory) -> Path:
    """Two worker processes on a queue of their own, subtree slices of 5 pages."""
    log_path = tmp_path_factory.mktemp("publish-worker") / "worker.log"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "cms_project", "worker",
            "--pool", "prefork", "--concurrency", "2", "-Q", QUEUE,
            "--loglevel", "INFO", "--without-gossip", "--without-mingle",
        ],
        cwd=REPO_ROOT,
        env=process_env(CMS_JOBS_QUEUE=QUEUE, CMS_PUBLISH_SLICE_PAGES=str(SLICE)),
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    yield log_path
    stop_process(process)


def _clean() -> None:
    fair_queue.clear()
    for schema in ("acme", "globex"):
        with schema_context(schema):
            BackgroundJob.objects.all().delete()
            Page.objects.filter(title__startswith="PQ ").delete()
            get_user_model().objects.filter(username="pq-moderator").delete()
    connection.set_schema_to_public()


@pytest.fixture
def committed(django_db_blocker):
    with django_db_blocker.unblock(), override_settings(CMS_JOBS_QUEUE=QUEUE):
        _clean()
        concurrency = {p.name: p.publish_concurrency for p in Plan.objects.all()}
        yield
        for name, value in concurrency.items():
            Plan.objects.filter(name=name).update(publish_concurrency=value)
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(QUEUE)
        _clean()


def _draft(schema: str, title: str, parent_id: int | None = None) -> ArticlePage:
    with schema_context(schema):
        parent = (
            Page.objects.get(pk=parent_id)
            if parent_id
            else Site.objects.get(is_default_site=True).root_page
        )
        article = ArticlePage(title=title, intro="draft", live=False)
        parent.add_child(instance=article)
        article.save_revision()
        return article


def _finished(schema: str, job_id: int) -> BackgroundJob | None:
    with schema_context(schema):
        job = BackgroundJob.objects.filter(pk=job_id).first()
    return job if job and job.status in (Status.DONE, Status.FAILED) else None


def _publish_concurrency(plan: str, value: int) -> None:
    call_command("plans", "update", plan, "--limit", f"publish_concurrency={value}")


def test_two_publishes_of_one_page_leave_the_newest_revision_live(committed, worker):
    article = _draft("acme", "PQ contested")
    with schema_context("acme"):
        older = article.get_latest_revision()
        article.title = "PQ contested, newer"
        newer = article.save_revision()
        # two editors' clicks (and a third repeat), all queued at once
        jobs = [
            queue_publish(page_id=article.pk, revision_id=older.pk),
            queue_publish(page_id=article.pk, revision_id=newer.pk),
            queue_publish(page_id=article.pk, revision_id=older.pk),
        ]

    finished = [
        wait_for(lambda j=j: _finished("acme", j.pk), timeout=60, what=f"job {j.pk}")
        for j in jobs
    ]

    assert [job.status for job in finished] == [Status.DONE] * 3, [
        job.reason for job in finished
    ]
    with schema_context("acme"):
        page = Page.objects.get(pk=article.pk)
        assert page.live and page.live_revision_id == newer.pk
        assert page.title == "PQ contested, newer"
        publishes = PageLogEntry.objects.filter(
            page_id=article.pk, action="wagtail.publish"
        )
        # the newer revision went live once; the older one at most once before it
        assert publishes.filter(revision_id=newer.pk).count() == 1
        assert publishes.count() <= 2


def test_the_worker_rechecks_the_permission_recorded_at_enqueue(committed, worker):
    _publish_concurrency("pro", 1)  # the publish waits behind a slow job
    article = _draft("acme", "PQ demoted")
    with schema_context("acme"):
        moderator = get_user_model().objects.create_user(
            username="pq-moderator", password="pq-pass-1"
        )
        moderator.groups.add(Group.objects.get(name="Moderators"))
        moderator.user_permissions.add(Permission.objects.get(codename="access_admin"))
        enqueue_job(kind="test.sleep", args={"seconds": 2})
        job = queue_publish(page_id=article.pk, user_id=moderator.pk)
        moderator.groups.clear()  # demoted while the publish waits

    failed = wait_for(lambda: _finished("acme", job.pk), timeout=60, what="publish")

    assert failed.status == Status.FAILED
    assert "may not publish" in failed.reason
    with schema_context("acme"):
        assert not Page.objects.get(pk=article.pk).live


def test_another_tenants_single_publish_finishes_while_a_subtree_still_runs(
    committed, worker
):
    _publish_concurrency("pro", 1)
    root = _draft("acme", "PQ big section")
    for index in range(8 * SLICE - 1):
        _draft("acme", f"PQ section page {index}", parent_id=root.pk)
    single = _draft("globex", "PQ globex news")
    with schema_context("acme"):
        subtree = queue_subtree(root_id=root.pk, publish=True)

    def started():
        with schema_context("acme"):
            return BackgroundJob.objects.get(pk=subtree.pk).progress_done > 0

    wait_for(started, timeout=60, what="the subtree's first slice")
    with schema_context("globex"):
        globex_job = queue_publish(page_id=single.pk)
    done = wait_for(
        lambda: _finished("globex", globex_job.pk), timeout=60, what="globex publish"
    )

    assert done.status == Status.DONE, done.reason
    with schema_context("acme"):
        at_that_time = BackgroundJob.objects.get(pk=subtree.pk)
    # globex's publish waited for at most a slice or so, not for the subtree
    assert at_that_time.status == Status.QUEUED
    assert at_that_time.progress_done < at_that_time.progress_total == 8 * SLICE
    finished = wait_for(
        lambda: _finished("acme", subtree.pk), timeout=120, what="the whole subtree"
    )
    assert finished.status == Status.DONE, finished.reason
    assert (finished.progress_done, finished.progress_total) == (8 * SLICE,) * 2
    with schema_context("acme"):
        assert root.get_descendants(inclusive=True).live().count() == 8 * SLICE


def _overlapping(jobs: list[BackgroundJob]) -> int:
    """The most jobs that ran at the same time."""
    events = sorted(
        [(job.started_at, 1) for job in jobs] + [(job.finished_at, -1) for job in jobs]
    )
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


@pytest.mark.parametrize("concurrency", [1, 2])
def test_the_plans_publish_concurrency_caps_a_tenants_jobs_in_flight(
    committed, worker, concurrency
):
    _publish_concurrency("pro", concurrency)
    with schema_context("acme"):
        jobs = [enqueue_job(kind="test.sleep", args={"seconds": 1.5}) for _ in range(4)]

    finished = [
        wait_for(lambda j=j: _finished("acme", j.pk), timeout=60, what=f"job {j.pk}")
        for j in jobs
    ]

    assert {job.status for job in finished} == {Status.DONE}
    assert _overlapping(finished) == concurrency


def test_every_worker_line_of_a_job_carries_the_request_id_of_the_click(
    committed, worker
):
    article = _draft("acme", "PQ traced")
    request_id = f"click-{uuid.uuid4().hex[:8]}"
    tokens = log_context.bind(request_id=request_id, tenant="acme")
    try:
        with schema_context("acme"):
            job = queue_publish(page_id=article.pk)
    finally:
        log_context.unbind(tokens)
    wait_for(lambda: _finished("acme", job.pk), timeout=60, what="the publish")

    def lines():
        found = []
        for line in worker.read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("request_id") == request_id:
                found.append(event)
        return found

    events = wait_for(
        lambda: [e for e in lines() if e["message"] == f"job {job.pk} of acme: done"],
        timeout=10,
        what="the job's last line",
    )
    messages = [event["message"] for event in lines()]
    # Wagtail's own "Published" line, written while the job ran, carries it too
    assert any(m.startswith('Published: "PQ traced"') for m in messages), messages
    assert events[0]["tenant"] == "acme"
