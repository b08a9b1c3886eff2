"""Where pages and documents change, events are emitted (Wagtail's signals and
Django's for what Wagtail does not signal). Connected once from ``ContentConfig``."""

import logging
from collections.abc import Callable

from django.db import connection
from django.db.models.signals import post_save, pre_delete
from wagtail.documents import get_document_model
from wagtail.log_actions import get_active_log_context
from wagtail.models import Page
from wagtail.signals import page_published, page_unpublished, post_page_move

from content.integrations.models import WebhookEvent
from content.integrations.webhooks import emit, page_data, subscribed_endpoints

logger = logging.getLogger(__name__)


def _in_tenant() -> bool:
    from django.conf import settings

    # a database without django-tenants (bench/overhead's vanilla Wagtail) has no
    # tenant, so no endpoints
    schema = getattr(connection, "schema_name", settings.PUBLIC_SCHEMA_NAME)
    return schema not in (settings.PUBLIC_SCHEMA_NAME, settings.CMS_TEMPLATE_SCHEMA)


def _emit(event: str, make_data: Callable[[], dict], actor=None) -> None:
    """Emit, but never fail the editor's change because of a webhook (logged). The
    payload is built only when an endpoint wants the event (a large subtree deleted
    without endpoints costs one query per page, not a URL lookup too)."""
    if not _in_tenant():
        return
    try:
        endpoints = subscribed_endpoints(event)
        if endpoints:
            emit(
                event=event,
                data=make_data(),
                actor=actor or get_active_log_context().user,
                endpoints=endpoints,
            )
    except Exception:
        logger.exception("could not emit webhook event %s", event)


def on_published(sender, instance, revision=None, **kwargs) -> None:
    actor = getattr(revision, "user", None) if revision is not None else None
    _emit(WebhookEvent.PAGE_PUBLISHED, lambda: page_data(instance), actor)


def on_unpublished(sender, instance, **kwargs) -> None:
    _emit(WebhookEvent.PAGE_UNPUBLISHED, lambda: page_data(instance))


def on_deleted(sender, instance, **kwargs) -> None:
    _emit(WebhookEvent.PAGE_DELETED, lambda: page_data(instance))


def on_moved(sender, instance, parent_page_before, parent_page_after, **kwargs):
    if parent_page_before.pk == parent_page_after.pk:
        return  # a reorder among siblings, not a move
    _emit(
        WebhookEvent.PAGE_MOVED,
        lambda: page_data(
            instance,
            extra={
                "from": {
                    "parent_id": parent_page_before.pk,
                    "url_path": kwargs.get("url_path_before"),
                },
                "to": {
                    "parent_id": parent_page_after.pk,
                    "url_path": kwargs.get("url_path_after"),
                },
            },
        ),
    )


def on_document_saved(sender, instance, created: bool, **kwargs) -> None:
    if not created:
        return
    _emit(
        WebhookEvent.DOCUMENT_CREATED,
        lambda: {
            "document": {
                "id": instance.pk,
                "title": instance.title,
                "url": instance.url,
                "collection_id": instance.collection_id,
            }
        },
        getattr(instance, "uploaded_by_user", None),
    )


def connect_webhook_signals() -> None:
    page_published.connect(on_published, dispatch_uid="webhooks-published")
    page_unpublished.connect(on_unpublished, dispatch_uid="webhooks-unpublished")
    pre_delete.connect(on_deleted, sender=Page, dispatch_uid="webhooks-deleted")
    post_page_move.connect(on_moved, dispatch_uid="webhooks-moved")
    post_save.connect(
        on_document_saved,
        sender=get_document_model(),
        dispatch_uid="webhooks-document-created",
    )
