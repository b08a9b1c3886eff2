"""The page editor opened while a worker commits a publish or a schedule: Wagtail's
edit view reads the scheduled revision twice (``dispatch``, then the page's lock in
``get``); both reads must agree, or the editor gets a 500."""

import threading
import time

import pytest
from django_tenants.utils import schema_context
from wagtail.models import DraftStateMixin, Revision

from tests.content.test_background_jobs import (  # noqa: F401 - fixture
    _admin_client,
    _draft_article,
    committed,
)
from tests.integration import other_connection

pytestmark = pytest.mark.usefixtures("django_db_setup", "committed")


def _schedule_from_another_connection(revision_id: int) -> None:
    """What the worker's publish job with a go-live date commits."""
    with other_connection(autocommit=True) as other:
        other.execute(
            "UPDATE acme.wagtailcore_revision"
            " SET approved_go_live_at = now() + interval '1 hour' WHERE id = %s",
            [revision_id],
        )


def test_a_schedule_committed_while_the_editor_loads_never_gives_a_500(monkeypatch):
    page_id = _draft_article("acme", "BG snapshot rocket")
    with schema_context("acme"):
        revision_id = Revision.objects.filter(object_id=str(page_id)).latest("pk").pk
    client = _admin_client()
    real_get_lock = DraftStateMixin.get_lock
    committed_meanwhile = []

    def get_lock(page):
        if not committed_meanwhile:  # between dispatch's read and this one
            _schedule_from_another_connection(revision_id)
            committed_meanwhile.append(revision_id)
        return real_get_lock(page)

    monkeypatch.setattr(DraftStateMixin, "get_lock", get_lock)

    response = client.get(f"/admin/pages/{page_id}/edit/")

    assert committed_meanwhile
    assert response.status_code == 200
    # the next load sees the schedule, with its lock and its cancel button
    monkeypatch.setattr(DraftStateMixin, "get_lock", real_get_lock)
    again = client.get(f"/admin/pages/{page_id}/edit/")
    assert again.status_code == 200
    assert "Cancel scheduled publish" in again.content.decode()


def _publish_from_another_connection(page_id: int) -> threading.Thread:
    """What a worker publishing the page does: lock the page's row, update it, and
    commit a moment later. Returns once the row is locked."""
    locked = threading.Event()

    def publish() -> None:
        with other_connection() as other:
            other.execute(
                "SELECT id FROM acme.wagtailcore_page WHERE id = %s FOR UPDATE",
                [page_id],
            )
            other.execute(
                "UPDATE acme.wagtailcore_page SET has_unpublished_changes = true"
                " WHERE id = %s",
                [page_id],
            )
            locked.set()
            time.sleep(0.5)  # the editor's commit waits for this one's, then fails
            other.commit()

    worker = threading.Thread(target=publish, daemon=True)
    worker.start()
    assert locked.wait(10)
    return worker


def test_the_editor_loads_again_when_the_worker_updated_the_page_meanwhile(
    monkeypatch,
):
    """The editor's first GET subscribes the user to the page (a row checked against
    the page's at commit); a worker's update of the page in between makes PostgreSQL
    refuse that commit in the snapshot. The view runs again, and its messages are
    shown once."""
    from wagtail.models import PageSubscription

    page_id = _draft_article("acme", "BG snapshot retry comet")
    with schema_context("acme"):
        revision_id = Revision.objects.filter(object_id=str(page_id)).latest("pk").pk
        PageSubscription.objects.filter(page_id=page_id).delete()
    client = _admin_client()
    # scheduled beforehand: the page shows its lock message on every load
    _schedule_from_another_connection(revision_id)
    real_get_lock = DraftStateMixin.get_lock
    calls = []

    workers = []

    def get_lock(page):
        calls.append(page.pk)
        if len(calls) == 1:
            workers.append(_publish_from_another_connection(page_id))
        return real_get_lock(page)

    monkeypatch.setattr(DraftStateMixin, "get_lock", get_lock)

    response = client.get(f"/admin/pages/{page_id}/edit/")
    workers[0].join(10)

    assert response.status_code == 200
    assert len(calls) >= 2  # the first attempt's commit was refused
    with schema_context("acme"):
        assert PageSubscription.objects.filter(page_id=page_id).count() == 1
    # the failed attempt's messages were taken back: as many as on a quiet load
    monkeypatch.setattr(DraftStateMixin, "get_lock", real_get_lock)
    quiet = client.get(f"/admin/pages/{page_id}/edit/")
    shown = response.content.decode().count("Cancel scheduled publish")
    assert shown >= 1
    assert shown == quiet.content.decode().count("Cancel scheduled publish")
