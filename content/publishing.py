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


@dataclass(frozen=True)
class SubtreeOutcome:
    root_id: int
    changed: int
    unchanged: int


def unpublish_page(*, page_id: int, user_id: int | None = None) -> bool:
    """Unpublish a page in the current schema; False when it was not live (so a
    repeated job changes nothing)."""
    page = Page.objects.filter(pk=page_id).first()
    if page is None:
        raise PublishError(f"No page with id {page_id}.")
    if not page.live:
        return False
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    page.specific.unpublish(user=user)
    return True


def _subtree(root_id: int):
    root = Page.objects.filter(pk=root_id).first()
    if root is None:
        raise PublishError(f"No page with id {root_id}.")
    return root.get_descendants(inclusive=True).order_by("path")


def publish_subtree(*, root_id: int, user_id: int | None = None) -> SubtreeOutcome:
    """Publish the latest revision of a page and each of its descendants (parents
    first). Pages already live at their latest revision are left alone."""
    changed = unchanged = 0
    for page in _subtree(root_id):
        if page.latest_revision_id is None:
            unchanged += 1
            continue
        outcome = publish_page(page_id=page.pk, user_id=user_id)
        if outcome.already_live:
            unchanged += 1
        else:
            changed += 1
    return SubtreeOutcome(root_id=root_id, changed=changed, unchanged=unchanged)


def unpublish_subtree(*, root_id: int, user_id: int | None = None) -> SubtreeOutcome:
    """Unpublish a page and its live descendants (children first)."""
    changed = unchanged = 0
    for page in reversed(list(_subtree(root_id))):
        if unpublish_page(page_id=page.pk, user_id=user_id):
            changed += 1
        else:
            unchanged += 1
    return SubtreeOutcome(root_id=root_id, changed=changed, unchanged=unchanged)


def publish_scheduled() -> str:
    """Wagtail's go-live and expiry pass (``manage.py publish_scheduled``) in the
    current schema; returns what it printed."""
    from io import StringIO

    from django.core.management import call_command

    output = StringIO()
    call_command("publish_scheduled", stdout=output)
    return output.getvalue()


def has_scheduled_work() -> bool:
    """Whether ``publish_scheduled`` would change anything in the current schema (a
    cheap check, so the sweep queues jobs only for tenants with due work)."""
    from django.apps import apps
    from django.utils import timezone
    from wagtail.models import DraftStateMixin

    now = timezone.now()
    if Revision.objects.filter(approved_go_live_at__lt=now).exists():
        return True
    models = [Page] + [
        model
        for model in apps.get_models()
        if issubclass(model, DraftStateMixin) and not issubclass(model, Page)
    ]
    return any(
        model.objects.filter(live=True, expire_at__lt=now).exists() for model in models
    )
