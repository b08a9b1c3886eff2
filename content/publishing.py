"""Publishing services, shared by the admin views and the Celery tasks.

Publishing is idempotent: publishing a revision that is already live does nothing, so
a task that is delivered twice (late acknowledgement after a worker died) publishes
exactly once.
"""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from wagtail.models import Page, Revision


class PublishError(Exception):
    """A page or revision that cannot be published; the message says why."""


@dataclass(frozen=True)
class PublishOutcome:
    page_id: int
    revision_id: int
    already_live: bool


def publish_page(
    *, page_id: int, revision_id: int | None = None, user_id: int | None = None
) -> PublishOutcome:
    """Publish a revision of a page (its latest when none is given) in the current
    schema."""
    page = Page.objects.filter(pk=page_id).first()
    if page is None:
        raise PublishError(f"No page with id {page_id}.")
    if revision_id is None:
        revision = page.get_latest_revision()
        if revision is None:
            raise PublishError(f"Page {page_id} has no revision to publish.")
    else:
        revision = Revision.page_revisions.filter(
            pk=revision_id, object_id=str(page_id)
        ).first()
        if revision is None:
            raise PublishError(f"Page {page_id} has no revision {revision_id}.")
    if page.live and page.live_revision_id == revision.pk:
        return PublishOutcome(
            page_id=page_id, revision_id=revision.pk, already_live=True
        )
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    revision.publish(user=user)
    return PublishOutcome(page_id=page_id, revision_id=revision.pk, already_live=False)
