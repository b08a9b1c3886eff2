"""Wagtail's index updates ride along with the transaction that caused them: one
batch per transaction, run on the worker right after a publish job (no jobs of their
own), or queued as one job when a request caused them; nothing of a rolled-back
transaction is queued."""

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import override_settings
from django_tenants.utils import schema_context
from wagtail.models import Page

from content.jobs import enqueue_job, run_claimed_job
from content.models import BackgroundJob
from content.task_backend import WAGTAIL_TASK_KIND
from tests.content.test_background_jobs import (  # noqa: F401 - fixture
    CELERY_TASKS,
    _draft_article,
    _search,
    committed,
)

pytestmark = pytest.mark.usefixtures("django_db_setup", "committed")

INDEX_TASK = "modelsearch.tasks.insert_or_update_object_task"


def _index_jobs(schema: str) -> list[BackgroundJob]:
    with schema_context(schema):
        return list(BackgroundJob.objects.filter(kind=WAGTAIL_TASK_KIND))


def _draft(schema: str, title: str) -> int:
    """A draft article, without the index jobs its creation queued."""
    page_id = _draft_article(schema, title)
    with schema_context(schema):
        BackgroundJob.objects.filter(kind=WAGTAIL_TASK_KIND).delete()
    return page_id


@override_settings(TASKS=CELERY_TASKS)
def test_a_publish_job_updates_the_index_in_its_own_turn_without_queuing_jobs():
    page_id = _draft("acme", "BG batchedokapi")
    with schema_context("acme"):
        admin = get_user_model().objects.get(username="admin")
        job = enqueue_job(
            kind="publish", args={"page_id": page_id}, page_id=page_id, user_id=admin.pk
        )

    outcome = run_claimed_job(schema="acme", job_id=job.pk, attempt=1)

    assert outcome.status == BackgroundJob.Status.DONE
    assert _search("acme", "batchedokapi") == [page_id]
    assert _index_jobs("acme") == []


@override_settings(TASKS=CELERY_TASKS)
def test_a_request_queues_one_job_per_transaction_with_each_task_once():
    page_id = _draft("acme", "BG onebatch")
    with schema_context("acme"):
        page = Page.objects.get(pk=page_id).specific
        with transaction.atomic():
            page.intro = "first"
            page.save()
            page.intro = "second"
            page.save()  # the same index task again: kept once

    [job] = _index_jobs("acme")
    paths = [task["path"] for task in job.args["tasks"]]
    assert paths.count(INDEX_TASK) == 1
    assert len(paths) == len(set(map(str, job.args["tasks"])))


@override_settings(TASKS=CELERY_TASKS)
def test_a_rolled_back_transaction_queues_nothing_and_the_next_gets_its_own_batch():
    page_id = _draft("acme", "BG rolledback")
    with schema_context("acme"):
        page = Page.objects.get(pk=page_id).specific
        try:
            with transaction.atomic():
                page.save()
                raise RuntimeError("editor's save failed")
        except RuntimeError:
            pass
        assert _index_jobs("acme") == []

        with transaction.atomic():
            page.save()

    [job] = _index_jobs("acme")
    assert INDEX_TASK in [task["path"] for task in job.args["tasks"]]


@override_settings(TASKS=CELERY_TASKS)
def test_an_api_publish_hands_its_index_updates_to_the_publish_job(api_token):
    """The write API saves the revision and queues the publish in one transaction:
    one job, no index job; the publish runs the handed-over updates once."""
    from django.test import Client
    from wagtail.models import APIToken

    from tests.conftest import ACME_HOST

    page_id = _draft_article("acme", "BG handedover")
    with schema_context("acme"):
        BackgroundJob.objects.all().delete()
    client = Client(
        HTTP_HOST=ACME_HOST, HTTP_AUTHORIZATION=f"Bearer {api_token('acme')}"
    )
    try:
        response = client.patch(
            f"/api/v2/articles/{page_id}/",
            {"intro": "handed over quasarwombat", "publish": True},
            content_type="application/json",
        )
    finally:
        with schema_context("acme"):  # committed: other tests count acme's tokens
            APIToken.objects.all().delete()

    assert response.status_code == 202, response.content
    with schema_context("acme"):
        [job] = BackgroundJob.objects.all()
    assert job.kind == "publish"
    assert INDEX_TASK in [task["path"] for task in job.args["wagtail_tasks"]]

    run_claimed_job(schema="acme", job_id=job.pk, attempt=1)

    assert _search("acme", "handedover") == [page_id]
    assert _index_jobs("acme") == []


@override_settings(TASKS=CELERY_TASKS)
def test_one_transaction_over_two_tenants_queues_each_its_own_batch():
    """Saves in two schemas under one transaction that commits outside both (an
    operator's command, say): each tenant gets one job with only its own tasks, in
    its own schema, handed to the fair queue although the commit came after the
    connection had left the schemas."""
    from tenants.jobs import fair_queue

    acme_id = _draft("acme", "BG twotenants acme")
    globex_id = _draft("globex", "BG twotenants globex")

    with transaction.atomic():
        with schema_context("acme"):
            Page.objects.get(pk=acme_id).specific.save()
        with schema_context("globex"):
            Page.objects.get(pk=globex_id).specific.save()

    for schema, page_id in (("acme", acme_id), ("globex", globex_id)):
        [job] = _index_jobs(schema)
        assert {task["args"][2] for task in job.args["tasks"]} == {str(page_id)}
        with schema_context(schema):
            job.refresh_from_db()
        dispatched = (
            job.status == BackgroundJob.Status.DONE
            or fair_queue.position(schema=schema, job_ref=str(job.pk)) is not None
            or str(job.pk) in fair_queue.in_flight(schema=schema)
        )
        assert dispatched, f"{schema}'s index job never reached the fair queue"


# A fair queue no worker of the session serves: a stray token of another test, popping
# globex's waiting first job between the check and the publish's commit, made the
# publish run its index updates inline (CI, 2026-12-02).
PRIVATE_QUEUE = "test-batches-newcomer"


@override_settings(TASKS=CELERY_TASKS, CMS_JOBS_QUEUE=PRIVATE_QUEUE)
def test_a_publish_with_another_tenant_waiting_leaves_its_index_updates_queued():
    """Another tenant's first job waits for the next free worker: the publish that
    ends makes way at once (its page is live) and queues its index updates for its
    own tenant's next turn, where they run."""
    from tenants.jobs import fair_queue

    fair_queue.clear()
    page_id = _draft("acme", "BG makewaynarwhal")
    fair_queue.clear(schema="acme")  # the draft's index job, deleted
    with schema_context("acme"):
        admin = get_user_model().objects.get(username="admin")
        # in the tenant's queue without a token: no worker of another test takes it
        job = enqueue_job(
            kind="publish",
            args={"page_id": page_id},
            page_id=page_id,
            user_id=admin.pk,
            dispatch=False,
        )
    fair_queue.push(schema="acme", job_refs=[str(job.pk)], cap=2)
    claim = fair_queue.pop()
    assert (claim.schema, claim.job_ref) == ("acme", str(job.pk))
    assert not fair_queue.newcomer_waiting(other_than="acme")
    # globex's first job waits for a worker
    fair_queue.push(schema="globex", job_refs=["999999"], cap=1)
    assert fair_queue.newcomer_waiting(other_than="acme")

    outcome = run_claimed_job(schema="acme", job_id=job.pk, attempt=claim.attempt)

    assert outcome.status == BackgroundJob.Status.DONE
    with schema_context("acme"):
        assert Page.objects.get(pk=page_id).live
    # queued as a job
    [index_job] = _index_jobs("acme")
    assert INDEX_TASK in [task["path"] for task in index_job.args["tasks"]]

    fair_queue.clear()
    run_claimed_job(schema="acme", job_id=index_job.pk, attempt=1)
    assert _search("acme", "makewaynarwhal") == [page_id]
