"""The fair queue's token parking: a token that finds every pending tenant at its cap
waits for a slot instead of polling, and the job that frees the slot wakes it."""

import pytest

from tenants.jobs import fair_queue

QUEUE = "tests-parking"


@pytest.fixture(autouse=True)
def _empty_queue():
    fair_queue.clear(queue=QUEUE)
    yield
    fair_queue.clear(queue=QUEUE)


def test_a_token_finding_every_tenant_capped_is_parked_and_woken_by_a_finish():
    fair_queue.push(schema="acme", job_refs=["1", "2", "3"], cap=1, queue=QUEUE)
    first = fair_queue.pop(queue=QUEUE, park=True)
    assert (first.schema, first.job_ref, first.parked) == ("acme", "1", False)

    # acme is at its cap: two tokens park instead of coming back to poll
    for _ in range(2):
        claim = fair_queue.pop(queue=QUEUE, park=True)
        assert (claim.job_ref, claim.parked) == (None, True)

    # each finish wakes one parked token, which then finds a free slot
    assert fair_queue.finish(schema="acme", job_ref="1", queue=QUEUE) is True
    second = fair_queue.pop(queue=QUEUE, park=True)
    assert second.job_ref == "2"
    assert fair_queue.finish(schema="acme", job_ref="2", queue=QUEUE) is True
    third = fair_queue.pop(queue=QUEUE, park=True)
    assert third.job_ref == "3"
    # nothing parked any more: the last finish wakes nobody
    assert fair_queue.finish(schema="acme", job_ref="3", queue=QUEUE) is False


def test_a_token_not_asked_to_park_is_told_it_was_capped():
    """Backups poll on their own schedule: they do not park."""
    fair_queue.push(schema="acme", job_refs=["1", "2"], cap=1, queue=QUEUE)
    fair_queue.pop(queue=QUEUE)
    claim = fair_queue.pop(queue=QUEUE)
    assert (claim.job_ref, claim.capped, claim.parked) == (None, True, False)
    assert fair_queue.finish(schema="acme", job_ref="1", queue=QUEUE) is False


def test_an_idle_queue_parks_nothing_and_unpark_forgets_parked_tokens():
    assert fair_queue.pop(queue=QUEUE, park=True).parked is False
    fair_queue.push(schema="acme", job_refs=["1", "2"], cap=1, queue=QUEUE)
    fair_queue.pop(queue=QUEUE, park=True)
    assert fair_queue.pop(queue=QUEUE, park=True).parked is True
    assert fair_queue.unpark(QUEUE) == 1
    assert fair_queue.unpark(QUEUE) == 0
    assert fair_queue.finish(schema="acme", job_ref="1", queue=QUEUE) is False


def test_a_held_tenant_keeps_its_jobs_waiting_until_released():
    """A live move holds the tenant's jobs on the pod it leaves (tenants.pods.moves)."""
    fair_queue.push(schema="acme", job_refs=["1", "2"], cap=2, queue=QUEUE)
    fair_queue.push(schema="globex", job_refs=["9"], cap=1, queue=QUEUE)
    running = fair_queue.pop(queue=QUEUE)
    assert (running.schema, running.job_ref) == ("acme", "1")

    assert fair_queue.hold(schema="acme", queue=QUEUE) == 1
    # a job queued while held waits too, and does not lift the hold
    fair_queue.push(schema="acme", job_refs=["3"], cap=2, queue=QUEUE)
    assert fair_queue.pop(queue=QUEUE).schema == "globex"
    assert fair_queue.pop(queue=QUEUE).job_ref is None
    assert fair_queue.running(schema="acme", queue=QUEUE) == 1
    assert fair_queue.known_refs(schema="acme", queue=QUEUE) == {"1", "2", "3"}
    fair_queue.finish(schema="acme", job_ref="1", queue=QUEUE)
    assert fair_queue.running(schema="acme", queue=QUEUE) == 0

    assert fair_queue.release(schema="acme", queue=QUEUE) == 2
    taken = [fair_queue.pop(queue=QUEUE) for _ in range(3)]
    # the cap from before the hold (2) is back
    assert [claim.job_ref for claim in taken] == ["2", "3", None]


def test_an_expired_lease_is_not_counted_as_running():
    """A dead worker's job: its lease is over, the move does not wait for it."""
    fair_queue.push(schema="acme", job_refs=["1"], cap=1, queue=QUEUE)
    fair_queue.pop(queue=QUEUE, lease=1)
    assert fair_queue.running(schema="acme", queue=QUEUE) == 1
    fair_queue.extend_lease(schema="acme", job_ref="1", seconds=-5, queue=QUEUE)
    assert fair_queue.running(schema="acme", queue=QUEUE) == 0
