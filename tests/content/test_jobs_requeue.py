"""Jobs and the pod a tenant lives on: ``manage.py jobs requeue SLUG`` queues a
tenant's unfinished jobs that this pod's fair queue lacks (after a move, or a Redis
that lost its data) again, once; a reference to a tenant this pod does not hold
(deleted, or moved away) is dropped, never run; a deleted tenant's references go."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django_tenants.utils import schema_context

from content.jobs import enqueue_job, run_claimed_job
from content.models import BackgroundJob
from tenants.jobs import fair_queue
from tenants.provisioning.creation import tenant_create, tenant_delete

pytestmark = pytest.mark.django_db
QUEUE = "tests-requeue"


def _job(status: str) -> BackgroundJob:
    job = enqueue_job(kind="publish", args={"page_id": 999999}, dispatch=False)
    BackgroundJob.objects.filter(pk=job.pk).update(status=status)
    return job


def _requeue(slug: str) -> str:
    out = StringIO()
    call_command("jobs", "requeue", slug, stdout=out)
    return out.getvalue()


@override_settings(CMS_JOBS_QUEUE=QUEUE)
def test_unfinished_jobs_the_queue_lacks_are_queued_again_once(
    django_capture_on_commit_callbacks,
):
    fair_queue.clear()
    with schema_context("acme"):
        in_queue = _job(BackgroundJob.Status.QUEUED)
        lost = _job(BackgroundJob.Status.QUEUED)
        left_running = _job(BackgroundJob.Status.RUNNING)
        _job(BackgroundJob.Status.DONE)
        _job(BackgroundJob.Status.FAILED)
    fair_queue.push(schema="acme", job_refs=[str(in_queue.pk)], cap=1)
    fair_queue.hold(schema="acme")  # left by an earlier move away from this pod

    with django_capture_on_commit_callbacks(execute=True):
        output = _requeue("acme")

    assert "2 unfinished job(s) of acme queued again." in output
    assert fair_queue.known_refs(schema="acme") == {
        str(in_queue.pk),
        str(lost.pk),
        str(left_running.pk),
    }
    assert fair_queue.position(schema="acme", job_ref=str(in_queue.pk)) == 0
    with schema_context("acme"):
        left_running.refresh_from_db()
    assert left_running.status == BackgroundJob.Status.QUEUED
    # the hold is over: the queue hands acme's jobs out again
    assert fair_queue.pop().job_ref == str(in_queue.pk)
    # nothing twice
    with django_capture_on_commit_callbacks(execute=True):
        assert "0 unfinished job(s)" in _requeue("acme")
    fair_queue.clear()


def test_an_unknown_tenant_is_a_clear_error():
    with pytest.raises(CommandError, match="No tenant with the slug 'nosuch'"):
        _requeue("nosuch")


@override_settings(CMS_JOBS_QUEUE=QUEUE)
def test_a_reference_to_a_tenant_this_pod_does_not_hold_is_dropped_not_run():
    fair_queue.clear()
    fair_queue.push(schema="elsewhere", job_refs=["7"], cap=1)
    claim = fair_queue.pop()

    outcome = run_claimed_job(schema=claim.schema, job_id=7, attempt=claim.attempt)

    assert outcome.status == "gone"
    assert fair_queue.in_flight(schema="elsewhere") == set()
    fair_queue.clear()


@override_settings(CMS_JOBS_QUEUE=QUEUE)
def test_deleting_a_tenant_forgets_its_job_references():
    fair_queue.clear()
    tenant_create(
        slug="leaving", name="Leaving", domains=["leaving.localhost"], plan="pro"
    )
    fair_queue.push(schema="leaving", job_refs=["1", "2"], cap=1)

    tenant_delete(slug="leaving", confirm=True)

    assert fair_queue.known_refs(schema="leaving") == set()
    assert fair_queue.pop().job_ref is None
