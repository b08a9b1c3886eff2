"""Background jobs on a real worker and broker: tenant correctness, retries, failures,
fairness under a backlog, scheduled publishing and exactly-once after a killed worker.
"""

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone
from django_tenants.utils import schema_context
from wagtail.models import Page, PageLogEntry, Site

from cms_project.celery import app
from content.jobs import enqueue_job, enqueue_jobs
from content.models import ArticlePage, BackgroundJob
from content.tasks import sweep_scheduled_publishing_task
from tenants.jobs import fair_queue
from tests.conftest import ACME_HOST
from tests.integration import REPO_ROOT, process_env, stop_process, wait_for

Status = BackgroundJob.Status


def _draft_article(schema: str, title: str, **fields) -> int:
    with schema_context(schema):
        home = Site.objects.get(is_default_site=True).root_page
        article = ArticlePage(title=title, intro="draft", live=False, **fields)
        home.add_child(instance=article)
        article.save_revision()
        return article.pk


def _job(schema: str, job_id: int) -> BackgroundJob | None:
    with schema_context(schema):
        return BackgroundJob.objects.filter(pk=job_id).first()


def _finished(schema: str, job_id: int) -> BackgroundJob | None:
    job = _job(schema, job_id)
    if job is not None and job.status in (Status.DONE, Status.FAILED):
        return job
    return None


def _purge_tokens(queue: str) -> None:
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)


def _clean(schemas=("acme", "globex")) -> None:
    fair_queue.clear()
    for schema in schemas:
        with schema_context(schema):
            BackgroundJob.objects.all().delete()
            Page.objects.filter(title__startswith="BG ").delete()
    connection.set_schema_to_public()


@pytest.fixture
def committed(django_db_blocker):
    """Autocommit access to the test database, shared with worker processes; jobs,
    queue keys and test pages are removed before and after."""
    with django_db_blocker.unblock():
        _clean()
        yield
        _purge_tokens(fair_queue.jobs_queue())
        _clean()


def _admin_client() -> Client:
    client = Client(HTTP_HOST=ACME_HOST)
    login = client.post(
        "/admin/login/", {"username": "admin", "password": "acme-admin-demo"}
    )
    assert login.status_code == 302
    return client


def test_job_queued_at_acme_runs_in_acme_schema_only(committed, celery_worker):
    acme_id = _draft_article("acme", "BG acme launch")
    # globex gets a draft with the very same page id: a job run in the wrong schema
    # would publish it.
    globex_id = _draft_article("globex", "BG globex draft")
    while globex_id < acme_id:
        globex_id = _draft_article("globex", f"BG globex draft {globex_id}")
    client = Client(HTTP_HOST=ACME_HOST)
    login = client.post(
        "/admin/login/", {"username": "admin", "password": "acme-admin-demo"}
    )
    assert login.status_code == 302

    response = client.post(
        f"/admin/content/publish-in-background/{acme_id}/", {"action": "publish"}
    )

    assert response.status_code == 302
    with schema_context("acme"):
        job_id = BackgroundJob.objects.get(kind="publish").pk
    job = wait_for(
        lambda: _finished("acme", job_id),
        timeout=60,
        what=f"acme job {job_id} (worker log: {celery_worker})",
    )
    assert job.status == Status.DONE, job.reason
    with schema_context("acme"):
        assert Page.objects.get(pk=acme_id).live
    with schema_context("globex"):
        assert not Page.objects.get(pk=acme_id).live
        assert not BackgroundJob.objects.exists()


def _run(schema: str, **job) -> BackgroundJob:
    with schema_context(schema):
        queued = enqueue_job(**job)
    done = wait_for(
        lambda: _finished(schema, queued.pk), timeout=60, what=f"job {job['kind']}"
    )
    assert done.status == Status.DONE, done.reason
    return done


def test_subtree_publish_unpublish_and_unpublish_jobs(committed, celery_worker):
    parent_id = _draft_article("acme", "BG parent")
    with schema_context("acme"):
        child = ArticlePage(title="BG child", intro="x", live=False)
        Page.objects.get(pk=parent_id).add_child(instance=child)
        child.save_revision()

    published = _run("acme", kind="publish_subtree", args={"root_id": parent_id})
    assert published.result == {"changed": 2, "unchanged": 0, "skipped": 0}
    assert (published.progress_done, published.progress_total) == (2, 2)
    assert _is_live("acme", parent_id) and _is_live("acme", child.pk)

    _run("acme", kind="unpublish", args={"page_id": child.pk})
    assert _is_live("acme", parent_id) and not _is_live("acme", child.pk)

    unpublished = _run("acme", kind="unpublish_subtree", args={"root_id": parent_id})
    assert unpublished.result == {"changed": 1, "unchanged": 1, "skipped": 0}
    assert not _is_live("acme", parent_id)


def test_transient_errors_are_retried_until_success(committed, celery_worker):
    with schema_context("acme"):
        job = enqueue_job(kind="test.flaky", args={"succeed_on": 3})

    done = wait_for(lambda: _finished("acme", job.pk), timeout=60, what="flaky job")

    assert done.status == Status.DONE
    assert done.attempts == 3
    assert done.result == {"attempts": 3}


def test_a_job_that_keeps_failing_ends_failed_with_the_reason(committed, celery_worker):
    with schema_context("acme"):
        flaky = enqueue_job(kind="test.flaky", args={"succeed_on": 99})
        broken = enqueue_job(kind="test.broken", args={})

    failed = wait_for(lambda: _finished("acme", flaky.pk), timeout=60, what="flaky")
    assert failed.status == Status.FAILED
    assert failed.attempts == 5
    assert "Failed after 5 attempts" in failed.reason
    assert "simulated connection loss" in failed.reason
    broken = wait_for(lambda: _finished("acme", broken.pk), timeout=60, what="broken")
    assert broken.status == Status.FAILED
    assert broken.attempts == 1
    assert broken.reason == "the page was deleted before the job ran"
    # the admin shows the failure to acme's editors
    client = Client(HTTP_HOST=ACME_HOST)
    login = client.post(
        "/admin/login/", {"username": "admin", "password": "acme-admin-demo"}
    )
    assert login.status_code == 302
    page = client.get("/admin/content/jobs/")
    assert "the page was deleted before the job ran" in page.content.decode()


def test_one_tenants_backlog_does_not_starve_another(committed, celery_worker):
    with schema_context("acme"):
        enqueue_jobs(kind="test.noop", args_list=[{}] * 1000)
    with schema_context("globex"):
        single = enqueue_job(kind="test.noop", args={})

    done = wait_for(
        lambda: _finished("globex", single.pk), timeout=60, what="globex's one job"
    )

    with schema_context("acme"):
        ran_meanwhile = BackgroundJob.objects.filter(
            status=Status.DONE,
            finished_at__gte=single.created_at,
            finished_at__lte=done.finished_at,
        ).count()
        not_yet_run = BackgroundJob.objects.filter(status=Status.QUEUED).count()
    # Round robin: at most the acme job in progress and the one before globex's
    # turn; in FIFO order all 1,000 would have run first.
    assert ran_meanwhile <= 3
    assert not_yet_run >= 500


def test_scheduled_sweep_publishes_due_pages_in_each_tenant(committed, celery_worker):
    past = timezone.now() - timedelta(minutes=5)
    acme_id = _draft_article("acme", "BG scheduled go-live")
    with schema_context("acme"):
        revision = Page.objects.get(pk=acme_id).specific.get_latest_revision()
        revision.approved_go_live_at = past
        revision.save()
    globex_id = _draft_article("globex", "BG expiring")
    with schema_context("globex"):
        page = Page.objects.get(pk=globex_id).specific
        page.get_latest_revision().publish()
        Page.objects.filter(pk=globex_id).update(expire_at=past)

    sweep_scheduled_publishing_task.delay()

    wait_for(
        lambda: _is_live("acme", acme_id) and not _is_live("globex", globex_id),
        timeout=60,
        what=f"the sweep's jobs (worker log: {celery_worker})",
    )
    for schema in ("acme", "globex"):
        with schema_context(schema):
            job = BackgroundJob.objects.get(kind="publish_scheduled")
            assert job.status == Status.DONE
    with schema_context("globex"):
        assert Page.objects.get(pk=globex_id).expired


def _is_live(schema: str, page_id: int) -> bool:
    with schema_context(schema):
        return Page.objects.get(pk=page_id).live


KILL_QUEUE = "tests-kill"


def _start_worker(log_path: Path) -> subprocess.Popen:
    """A worker in a session of its own, so the whole process group can be killed."""
    return subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "cms_project", "worker",
            "--pool", "prefork", "--concurrency", "1", "-Q", KILL_QUEUE,
            "--loglevel", "INFO", "--without-gossip", "--without-mingle",
        ],
        cwd=REPO_ROOT,
        env=process_env(CMS_JOBS_QUEUE=KILL_QUEUE, CMS_JOB_LEASE_SECONDS="3"),
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


@override_settings(CMS_JOBS_QUEUE=KILL_QUEUE)
def test_a_publish_killed_midway_ends_with_exactly_one_published_revision(
    committed, tmp_path
):
    _clean()
    page_id = _draft_article("acme", "BG killed midway")
    marker = tmp_path / "publishing"
    first = _start_worker(tmp_path / "first.log")
    second = None
    try:
        with schema_context("acme"):
            job = enqueue_job(
                kind="test.slow_publish",
                args={"page_id": page_id, "marker": str(marker), "sleep": 60},
            )
        wait_for(marker.exists, timeout=60, what="the first worker to be publishing")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        # its transaction died with it
        assert not _is_live("acme", page_id)
        # still held by the dead worker: shown as running until its lease expires
        jobs_page = _admin_client().get("/admin/content/jobs/").content.decode()
        assert "<td>Running</td>" in jobs_page

        second = _start_worker(tmp_path / "second.log")
        done = wait_for(
            lambda: _finished("acme", job.pk),
            timeout=60,
            what=f"the second worker to finish the job ({tmp_path})",
        )
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                stop_process(process)
        _purge_tokens(KILL_QUEUE)

    assert done.status == Status.DONE, done.reason
    assert done.attempts == 2
    with schema_context("acme"):
        page = Page.objects.get(pk=page_id)
        assert page.live
        publishes = PageLogEntry.objects.filter(
            page_id=page_id, action="wagtail.publish"
        )
        assert publishes.count() == 1
        assert page.revisions.count() == 1


CELERY_TASKS = {"default": {"BACKEND": "content.task_backend.CeleryTaskBackend"}}


def _search(schema: str, word: str) -> list[int]:
    with schema_context(schema):
        return [page.pk for page in Page.objects.live().search(word)]


@override_settings(TASKS=CELERY_TASKS)
def test_wagtail_search_index_updates_run_on_the_worker_in_the_tenants_schema(
    committed, celery_worker
):
    page_id = _draft_article("acme", "BG zanzibarquokka")
    with schema_context("acme"):
        Page.objects.get(pk=page_id).specific.get_latest_revision().publish()

    found = wait_for(
        lambda: _search("acme", "zanzibarquokka"),
        timeout=60,
        what=f"acme's search index to be updated (worker log: {celery_worker})",
    )

    assert found == [page_id]
    assert _search("globex", "zanzibarquokka") == []

    # through the fair queue, as acme's background jobs (not listed for editors)
    def index_jobs_done():
        with schema_context("acme"):
            jobs = list(BackgroundJob.objects.filter(kind="wagtail_task"))
        return jobs if {job.status for job in jobs} == {Status.DONE} else None

    index_jobs = wait_for(index_jobs_done, timeout=60, what="acme's index jobs")
    paths = {task["path"] for job in index_jobs for task in job.args["tasks"]}
    assert "modelsearch.tasks.insert_or_update_object_task" in paths
    with schema_context("globex"):
        assert not BackgroundJob.objects.filter(kind="wagtail_task").exists()
