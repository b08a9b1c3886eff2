"""Publishing services, run by the background jobs (``content.publish_jobs``) in a
tenant's schema.

Publishing is idempotent: publishing a revision that is already live does nothing, so
a job that runs again after its worker died publishes exactly once. The page's row is
locked first, so two publishes of one page (two editors, or a click and a scheduled
go-live) run one after the other and the newest revision stays live: an older
revision never replaces a newer live one. Permissions are Wagtail's, checked again for
the user who queued the job (they may have lost them meanwhile), and a page deleted
or moved since the click ends the job with a reason the editor can read.
"""

from dataclasses import dataclass
from io import StringIO

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.utils import timezone
from wagtail.models import DraftStateMixin, Page, Revision


class PublishError(Exception):
    """A page or revision that cannot be published; the message says why."""


@dataclass(frozen=True)
class PublishOutcome:
    page_id: int
    revision_id: int
    already_live: bool
    # a newer revision was live already: this (older) one was not published
    superseded: bool = False


def _locked_page(page_id: int, *, expected_path: str | None) -> Page:
    """The page, its row locked until the transaction ends; a readable error when it
    is gone or was moved after the job was queued."""
    page = Page.objects.select_for_update().filter(pk=page_id).first()
    if page is None:
        raise PublishError(
            f"Page {page_id} was deleted after the job was queued; nothing to do."
        )
    if expected_path is not None and page.url_path != expected_path:
        raise PublishError(
            f"“{page.title}” was moved after the job was queued (from "
            f"{expected_path} to {page.url_path}); queue it again from its new place."
        )
    return page


def _user(user_id: int | None):
    if user_id is None:
        return None
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        raise PublishError(f"The user (id {user_id}) who queued this job was deleted.")
    return user


def check_can_publish(page: Page, user) -> None:
    """Wagtail's rule for a user publishing a page (permission, and no lock or
    workflow holding it for someone else); raises ``PublishError`` with the reason."""
    tester = page.permissions_for_user(user)
    if not tester.can_publish():
        raise PublishError(f"{user} may not publish “{page.title}”.")
    if tester.page_locked():
        raise PublishError(f"“{page.title}” is locked; {user} may not publish it.")


def publish_page(
    *,
    page_id: int,
    revision_id: int | None = None,
    user_id: int | None = None,
    expected_path: str | None = None,
    check_page_permission: bool = True,
) -> PublishOutcome:
    """Publish a revision of a page (its latest when none is given) in the current
    schema, as ``user_id`` (whose permission is checked again when
    ``check_page_permission``; Wagtail's own check of the publish action always
    runs)."""
    page = _locked_page(page_id, expected_path=expected_path)
    if revision_id is None:
        revision = page.get_latest_revision()
        if revision is None:
            raise PublishError(f"“{page.title}” has no revision to publish.")
    else:
        revision = Revision.page_revisions.filter(
            pk=revision_id, object_id=str(page_id)
        ).first()
        if revision is None:
            raise PublishError(f"“{page.title}” has no revision {revision_id}.")
    if page.live and page.live_revision_id == revision.pk:
        return PublishOutcome(
            page_id=page_id, revision_id=revision.pk, already_live=True
        )
    if page.live and page.live_revision_id and page.live_revision_id > revision.pk:
        # a newer revision went live first (another editor, a scheduled go-live)
        return PublishOutcome(
            page_id=page_id,
            revision_id=page.live_revision_id,
            already_live=True,
            superseded=True,
        )
    user = _user(user_id)
    if user is not None and check_page_permission:
        check_can_publish(page, user)
    try:
        revision.publish(user=user)
    except PermissionDenied as exc:
        raise PublishError(f"{user} may not publish “{page.title}”: {exc}") from exc
    return PublishOutcome(page_id=page_id, revision_id=revision.pk, already_live=False)


def unpublish_page(
    *, page_id: int, user_id: int | None = None, expected_path: str | None = None
) -> bool:
    """Unpublish a page in the current schema; False when it was not live (so a
    repeated job changes nothing)."""
    page = _locked_page(page_id, expected_path=expected_path)
    if not page.live:
        return False
    user = _user(user_id)
    if user is not None and not page.permissions_for_user(user).can_unpublish():
        raise PublishError(f"{user} may not unpublish “{page.title}”.")
    page.specific.unpublish(user=user)
    return True


@dataclass(frozen=True)
class SliceOutcome:
    """One slice of a subtree: what changed, and where the next slice starts (None:
    the subtree is done)."""

    changed: int
    unchanged: int
    skipped: int
    next_after: str | None


def subtree_size(*, root_id: int) -> int:
    root = Page.objects.filter(pk=root_id).first()
    if root is None:
        raise PublishError(f"Page {root_id} was deleted after the job was queued.")
    return root.get_descendants(inclusive=True).count()


def _slice(root_id: int, *, after: str, size: int, reverse: bool) -> list[Page]:
    root = Page.objects.filter(pk=root_id).first()
    if root is None:
        raise PublishError(f"Page {root_id} was deleted after the job was queued.")
    pages = root.get_descendants(inclusive=True)
    if reverse:
        # children first: unpublish from the deepest, last paths backwards
        if after:
            pages = pages.filter(path__lt=after)
        return list(pages.order_by("-path")[:size])
    if after:
        pages = pages.filter(path__gt=after)
    return list(pages.order_by("path")[:size])


def publish_subtree_slice(
    *, root_id: int, after: str = "", size: int, user_id: int | None = None
) -> SliceOutcome:
    """Publish the latest revision of up to ``size`` pages of a subtree, parents
    first, after tree path ``after``. Pages the user may not publish are skipped (as
    Wagtail's bulk publish does); pages live at their latest revision are left
    alone."""
    user = _user(user_id)
    pages = _slice(root_id, after=after, size=size, reverse=False)
    changed = unchanged = skipped = 0
    for page in pages:
        if page.latest_revision_id is None:
            unchanged += 1
            continue
        if user is not None and not page.permissions_for_user(user).can_publish():
            skipped += 1
            continue
        outcome = publish_page(
            page_id=page.pk, user_id=user_id, check_page_permission=False
        )
        if outcome.already_live:
            unchanged += 1
        else:
            changed += 1
    return SliceOutcome(
        changed=changed,
        unchanged=unchanged,
        skipped=skipped,
        next_after=pages[-1].path if len(pages) == size else None,
    )


def unpublish_subtree_slice(
    *, root_id: int, after: str = "", size: int, user_id: int | None = None
) -> SliceOutcome:
    """Unpublish up to ``size`` live pages of a subtree, children first, before tree
    path ``after`` (walking backwards)."""
    user = _user(user_id)
    pages = _slice(root_id, after=after, size=size, reverse=True)
    changed = unchanged = skipped = 0
    for page in pages:
        if not page.live:
            unchanged += 1
            continue
        if user is not None and not page.permissions_for_user(user).can_unpublish():
            skipped += 1
            continue
        page.specific.unpublish(user=user)
        changed += 1
    return SliceOutcome(
        changed=changed,
        unchanged=unchanged,
        skipped=skipped,
        next_after=pages[-1].path if len(pages) == size else None,
    )


def publish_scheduled() -> str:
    """Wagtail's go-live and expiry pass (``manage.py publish_scheduled``) in the
    current schema; returns what it printed."""
    output = StringIO()
    call_command("publish_scheduled", stdout=output)
    return output.getvalue()


def has_scheduled_work() -> bool:
    """Whether ``publish_scheduled`` would change anything in the current schema (a
    cheap check, so the sweep queues jobs only for tenants with due work)."""
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
