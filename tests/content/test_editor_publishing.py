"""Every editor-initiated publish goes through the fair queue: the request checks
Wagtail's permissions, saves the revision, records the intent and returns at once.
The jobs are run here in-process (``run_claimed_job``), as a worker would run them;
tests/content/test_publish_queue_worker.py does it with a real worker."""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django_tenants.utils import schema_context
from wagtail.models import Page, Site
from wagtail.test.utils.form_data import inline_formset, nested_form_data, streamfield

from content.jobs import run_claimed_job
from content.models import ArticlePage, BackgroundJob
from tests.conftest import ACME_HOST

pytestmark = pytest.mark.django_db

Status = BackgroundJob.Status


def _login(username: str, password: str) -> Client:
    client = Client(HTTP_HOST=ACME_HOST)
    response = client.post(
        "/admin/login/", {"username": username, "password": password}
    )
    assert response.status_code == 302, "login failed"
    return client


@pytest.fixture
def admin(db) -> Client:
    return _login("admin", "acme-admin-demo")


@pytest.fixture
def editor(db) -> Client:
    """Wagtail's Editors group: may edit and submit for moderation, not publish."""
    return _login("editor", "acme-editor-demo")


def _home() -> Page:
    return Site.objects.get(is_default_site=True).root_page


def _draft(title: str) -> ArticlePage:
    with schema_context("acme"):
        article = ArticlePage(title=title, intro="draft", live=False)
        _home().add_child(instance=article)
        article.save_revision()
        return article


def _form(title: str, slug: str, **extra) -> dict:
    return nested_form_data(
        {
            "title": title,
            "slug": slug,
            "intro": "intro",
            "publication_date": datetime.date(2026, 12, 1).isoformat(),
            "body": streamfield([]),
            "comments": inline_formset([]),
            **extra,
        }
    )


def _run(job: BackgroundJob) -> BackgroundJob:
    """Run a queued job as a worker would (fair queue bookkeeping included)."""
    run_claimed_job(schema="acme", job_id=job.pk, attempt=1)
    with schema_context("acme"):
        return BackgroundJob.objects.get(pk=job.pk)


def _jobs(**filters) -> list[BackgroundJob]:
    with schema_context("acme"):
        return list(BackgroundJob.objects.filter(**filters).order_by("pk"))


def test_publish_button_on_edit_queues_the_saved_revision(admin):
    article = _draft("Queued launch")

    response = admin.post(
        f"/admin/pages/{article.pk}/edit/",
        _form("Queued launch v2", article.slug, **{"action-publish": "publish"}),
    )

    [job] = _jobs(page_id=article.pk)
    assert response.status_code == 302
    assert response.url == f"/admin/pages/{article.pk}/edit/?cms_job={job.pk}"
    with schema_context("acme"):
        page = ArticlePage.objects.get(pk=article.pk)
        latest = page.get_latest_revision()
        assert not page.live  # nothing published in the request
        assert latest.as_object().title == "Queued launch v2"
        assert job.kind == "publish"
        assert job.args["revision_id"] == latest.pk
        assert job.requested_by.username == "admin"
        assert job.status == Status.QUEUED

    done = _run(job)

    assert done.status == Status.DONE, done.reason
    with schema_context("acme"):
        page = ArticlePage.objects.get(pk=article.pk)
        assert page.live and page.title == "Queued launch v2"
        assert page.live_revision_id == latest.pk


def test_publish_button_on_create_queues_the_new_page(admin):
    with schema_context("acme"):
        home_id = _home().pk

    response = admin.post(
        f"/admin/pages/add/content/articlepage/{home_id}/",
        _form("Brand new", "brand-new", **{"action-publish": "publish"}),
    )

    assert response.status_code == 302
    with schema_context("acme"):
        page = ArticlePage.objects.get(slug="brand-new")
        assert not page.live
    [job] = _jobs(page_id=page.pk)
    assert response.url == f"/admin/pages/{page.pk}/edit/?cms_job={job.pk}"
    assert _run(job).status == Status.DONE
    with schema_context("acme"):
        assert ArticlePage.objects.get(pk=page.pk).live


def test_an_editor_without_publish_permission_cannot_queue_a_publish(editor):
    article = _draft("Not yours to publish")

    # a crafted POST of the editor's form with the publish action: Wagtail saves a
    # draft, nothing is queued
    editor.post(
        f"/admin/pages/{article.pk}/edit/",
        _form("Sneaky", article.slug, **{"action-publish": "publish"}),
    )
    # the publish-in-background page, and its POST: Wagtail's admin answers a
    # permission denied with a redirect to the dashboard
    page_url = f"/admin/content/publish-in-background/{article.pk}/"
    assert editor.get(page_url).url == "/admin/"
    for action in ("publish", "publish_subtree"):
        assert editor.post(page_url, {"action": action}).url == "/admin/"
    # the listing's bulk publish
    editor.post(
        f"/admin/bulk/wagtailcore/page/publish/?id={article.pk}",
        {"include_descendants": ""},
    )
    # the page's JSON status endpoint tells nothing it may not see... but it may
    # edit this page, so it can read the (absent) status
    assert (
        editor.get(f"/admin/content/pages/{article.pk}/publish-status/").json()["job"]
        is None
    )

    assert _jobs(page_id=article.pk) == []
    with schema_context("acme"):
        assert not Page.objects.get(pk=article.pk).live


def test_the_job_rechecks_the_permission_of_the_user_who_queued_it(admin):
    article = _draft("Permission revoked")
    with schema_context("acme"):
        moderator = get_user_model().objects.create_user(
            username="mod", password="mod-pass-1"
        )
        moderator.groups.add(Group.objects.get(name="Moderators"))
        from django.contrib.auth.models import Permission

        moderator.user_permissions.add(Permission.objects.get(codename="access_admin"))
    client = _login("mod", "mod-pass-1")
    client.post(
        f"/admin/pages/{article.pk}/edit/",
        _form("Permission revoked", article.slug, **{"action-publish": "publish"}),
    )
    [job] = _jobs(page_id=article.pk)
    with schema_context("acme"):
        moderator.groups.clear()  # demoted before the worker got to it

    failed = _run(job)

    assert failed.status == Status.FAILED
    assert "may not publish" in failed.reason
    with schema_context("acme"):
        assert not Page.objects.get(pk=article.pk).live


def test_unpublish_is_queued(admin):
    article = _draft("To be withdrawn")
    with schema_context("acme"):
        article.get_latest_revision().publish()

    response = admin.post(f"/admin/pages/{article.pk}/unpublish/", {})

    assert response.status_code == 302
    [job] = _jobs(page_id=article.pk)
    assert job.kind == "unpublish"
    with schema_context("acme"):
        assert Page.objects.get(pk=article.pk).live
    assert _run(job).status == Status.DONE
    with schema_context("acme"):
        assert not Page.objects.get(pk=article.pk).live


def test_status_endpoint_and_listing_marker_follow_the_job(admin):
    article = _draft("Watched page")
    admin.post(
        f"/admin/pages/{article.pk}/edit/",
        _form("Watched page", article.slug, **{"action-publish": "publish"}),
    )
    [job] = _jobs(page_id=article.pk)
    status_url = f"/admin/content/pages/{article.pk}/publish-status/"

    queued = admin.get(status_url).json()
    listing = admin.get(f"/admin/pages/{article.get_parent().pk}/").content.decode()
    job_json = admin.get(f"/admin/content/jobs/{job.pk}/status/").json()

    assert queued["job"]["status"] == "queued"
    assert queued["job"]["id"] == job.pk
    assert queued["live"] is False
    assert job_json["status"] == "queued"
    assert f'data-cms-job="{job.pk}"' in listing and "Publishing…" in listing
    # each page's menu offers "Publish with subpages…"
    assert f"/admin/content/publish-in-background/{article.pk}/" in listing
    editor_page = admin.get(f"/admin/pages/{article.pk}/edit/?cms_job={job.pk}")
    assert 'id="cms-publish-status"' in editor_page.content.decode()

    _run(job)

    done = admin.get(status_url).json()
    assert done["job"]["status"] == "done"
    assert done["live"] is True
    listing = admin.get(f"/admin/pages/{article.get_parent().pk}/").content.decode()
    assert f'data-cms-job="{job.pk}"' not in listing


def test_a_failed_job_is_retried_from_the_report(admin):
    article = _draft("Retry me")
    with schema_context("acme"):
        job = BackgroundJob.objects.create(
            kind="publish",
            page_id=article.pk,
            args={"page_id": article.pk, "revision_id": None},
            status=Status.FAILED,
            reason="database was down",
        )
    report = admin.get("/admin/content/jobs/").content.decode()
    assert f"/admin/content/jobs/{job.pk}/retry/" in report

    response = admin.post(f"/admin/content/jobs/{job.pk}/retry/")

    assert response.status_code == 302
    with schema_context("acme"):
        job.refresh_from_db()
        assert job.requested_by.username == "admin"
    assert job.status == Status.QUEUED and job.reason == ""
    assert _run(job).status == Status.DONE
    # a job that is not failed does not retry
    again = admin.post(f"/admin/content/jobs/{job.pk}/retry/", follow=True)
    assert "only failed jobs retry" in again.content.decode()


def test_bulk_publish_queues_one_job_per_page(admin):
    first, second = _draft("Bulk one"), _draft("Bulk two")

    response = admin.post(
        f"/admin/bulk/wagtailcore/page/publish/?id={first.pk}&id={second.pk}",
        {"include_descendants": ""},
    )

    assert response.status_code == 302
    jobs = _jobs(page_id__in=[first.pk, second.pk])
    assert [job.kind for job in jobs] == ["publish", "publish"]
    with schema_context("acme"):
        assert not Page.objects.filter(pk__in=[first.pk, second.pk], live=True).exists()
    for job in jobs:
        assert _run(job).status == Status.DONE
    with schema_context("acme"):
        assert Page.objects.filter(pk__in=[first.pk, second.pk], live=True).count() == 2


def test_a_job_for_a_page_moved_or_deleted_meanwhile_fails_readably(admin):
    moved, deleted = _draft("Moving page"), _draft("Vanishing page")
    for page in (moved, deleted):
        admin.post(
            f"/admin/pages/{page.pk}/edit/",
            _form(page.title, page.slug, **{"action-publish": "publish"}),
        )
    [moved_job] = _jobs(page_id=moved.pk)
    [deleted_job] = _jobs(page_id=deleted.pk)
    with schema_context("acme"):
        Page.objects.filter(pk=moved.pk).update(url_path="/home/elsewhere/")
        Page.objects.get(pk=deleted.pk).delete()

    moved_failed, deleted_failed = _run(moved_job), _run(deleted_job)

    assert moved_failed.status == Status.FAILED
    assert "was moved after the job was queued" in moved_failed.reason
    assert deleted_failed.status == Status.FAILED
    assert "was deleted after the job was queued" in deleted_failed.reason


def test_an_older_revision_never_replaces_a_newer_live_one(admin):
    article = _draft("Two editors")
    with schema_context("acme"):
        older = article.get_latest_revision()
        article.title = "Two editors, newer"
        newer = article.save_revision()
    from content.publish_jobs import queue_publish

    with schema_context("acme"):
        old_job = queue_publish(page_id=article.pk, revision_id=older.pk)
        new_job = queue_publish(page_id=article.pk, revision_id=newer.pk)

    # the newer job runs first, then the older one
    assert _run(new_job).status == Status.DONE
    old_done = _run(old_job)

    assert old_done.status == Status.DONE
    assert old_done.result["superseded"] is True
    with schema_context("acme"):
        assert Page.objects.get(pk=article.pk).live_revision_id == newer.pk


def test_approving_the_last_workflow_step_queues_the_publish(admin, editor):
    article = _draft("Needs approval")
    editor.post(
        f"/admin/pages/{article.pk}/edit/",
        _form("Needs approval", article.slug, **{"action-submit": "submit"}),
    )
    with schema_context("acme"):
        page = Page.objects.get(pk=article.pk)
        task_state = page.current_workflow_task_state
        assert task_state is not None, "the editor's submit started the workflow"

    response = admin.post(
        f"/admin/pages/workflow/action/{article.pk}/approve/{task_state.pk}/",
        {"comment": ""},
    )

    assert response.status_code in (200, 302)
    [job] = _jobs(page_id=article.pk)
    assert job.kind == "workflow_publish"
    with schema_context("acme"):
        assert not Page.objects.get(pk=article.pk).live
        assert job.requested_by.username == "admin"
    assert _run(job).status == Status.DONE
    with schema_context("acme"):
        assert Page.objects.get(pk=article.pk).live


def test_copy_with_publish_copies_queues_the_copies(admin):
    article = _draft("Original live")
    with schema_context("acme"):
        article.get_latest_revision().publish()
        parent_id = article.get_parent().pk

    response = admin.post(
        f"/admin/pages/{article.pk}/copy/",
        {
            "new_title": "Copied live",
            "new_slug": "copied-live",
            "new_parent_page": parent_id,
            "publish_copies": "on",
        },
    )

    assert response.status_code == 302
    with schema_context("acme"):
        copy = Page.objects.get(slug="copied-live")
        assert not copy.live  # copied as a draft, not published in the request
    [job] = _jobs(page_id=copy.pk)
    assert _run(job).status == Status.DONE
    with schema_context("acme"):
        assert Page.objects.get(pk=copy.pk).live


def test_a_subtree_publish_runs_in_slices_with_progress(admin, settings):
    settings.CMS_PUBLISH_SLICE_PAGES = 2
    parent = _draft("Slice parent")
    with schema_context("acme"):
        # ArticlePage allows no children: build the subtree under the draft article
        # with plain pages, as an import would
        for index in range(4):
            child = ArticlePage(title=f"Slice child {index}", live=False)
            Page.objects.get(pk=parent.pk).add_child(instance=child)
            child.save_revision()

    admin.post(
        f"/admin/content/publish-in-background/{parent.pk}/",
        {"action": "publish_subtree"},
    )
    [job] = _jobs(page_id=parent.pk)
    assert job.kind == "publish_subtree"

    outcomes = []
    for _ in range(3):
        outcomes.append(run_claimed_job(schema="acme", job_id=job.pk, attempt=1).status)
        with schema_context("acme"):
            job.refresh_from_db()
        if job.status == Status.QUEUED:
            status = admin.get(f"/admin/content/jobs/{job.pk}/status/").json()
            assert status["status"] == "running"
            assert (status["done"], status["total"]) == (job.progress_done, 5)

    assert outcomes == ["sliced", "sliced", "done"]
    assert (job.progress_done, job.progress_total) == (5, 5)
    with schema_context("acme"):
        live = Page.objects.get(pk=parent.pk).get_descendants(inclusive=True).live()
        assert live.count() == 5


def test_revert_to_a_revision_and_publish_is_queued(admin):
    article = _draft("Reverted title")
    with schema_context("acme"):
        first = article.get_latest_revision()
        article.title = "Second title"
        article.save_revision().publish()

    response = admin.post(
        f"/admin/pages/{article.pk}/revisions/{first.pk}/revert/",
        _form("Reverted title", article.slug, **{"action-publish": "publish"}),
    )

    assert response.status_code == 302
    [job] = _jobs(page_id=article.pk)
    with schema_context("acme"):
        assert Page.objects.get(pk=article.pk).title == "Second title"  # still live
    assert _run(job).status == Status.DONE
    with schema_context("acme"):
        page = Page.objects.get(pk=article.pk)
        assert page.title == "Reverted title"
        assert page.live_revision_id == job.args["revision_id"] != first.pk
