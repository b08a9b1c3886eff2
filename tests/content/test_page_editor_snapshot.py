"""The page editor opened while a worker commits a publish or a schedule: Wagtail's
edit view reads the scheduled revision twice (``dispatch``, then the page's lock in
``get``); both reads must agree, or the editor gets a 500."""

import psycopg
import pytest
from django.db import connection
from django_tenants.utils import schema_context
from wagtail.models import DraftStateMixin, Revision

from tests.content.test_background_jobs import (  # noqa: F401 - fixture
    _admin_client,
    _draft_article,
    committed,
)

pytestmark = pytest.mark.usefixtures("django_db_setup", "committed")


def _schedule_from_another_connection(revision_id: int) -> None:
    """What the worker's publish job with a go-live date commits."""
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        user=settings["USER"],
        dbname=settings["NAME"],
        autocommit=True,
    ) as other:
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
