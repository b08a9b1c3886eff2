"""Celery tasks of the content app.

Tasks take no schema argument: the tenant-aware Celery app records the schema of the
connection that enqueues a task and the worker runs it in that schema.
"""

import logging

from django.db import InterfaceError, OperationalError

from cms_project.celery import app
from content.publishing import PublishError, publish_page

logger = logging.getLogger(__name__)


@app.task(
    bind=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=5,
)
def publish_page_task(
    self, page_id: int, revision_id: int | None = None, user_id: int | None = None
) -> dict:
    try:
        outcome = publish_page(
            page_id=page_id, revision_id=revision_id, user_id=user_id
        )
    except PublishError as exc:
        logger.warning("publish of page %s failed: %s", page_id, exc)
        return {"page_id": page_id, "status": "failed", "reason": str(exc)}
    status = "already-live" if outcome.already_live else "published"
    logger.info("page %s revision %s: %s", page_id, outcome.revision_id, status)
    return {"page_id": page_id, "revision_id": outcome.revision_id, "status": status}
