"""Approving the last step of a workflow publishes through the fair queue.

``WAGTAIL_FINISH_WORKFLOW_ACTION`` points here. Wagtail imports this function while its
own models module is still loading (a class attribute of ``WorkflowState``), so this
module imports nothing of Wagtail's or ours at its top: the queueing service is looked
up when an approval happens.
"""


def publish_approved_workflow(workflow_state, user=None) -> None:
    """Instead of Wagtail's ``publish_workflow_state`` (which publishes inside the
    moderator's request): queue the latest revision's publish as the approver."""
    from content.publish_jobs import queue_workflow_publish  # see the module docstring

    page = workflow_state.content_object
    revision = page.get_latest_revision()
    queue_workflow_publish(
        page_id=page.pk,
        revision_id=revision.pk if revision else None,
        user_id=user.pk if user is not None else None,
    )
