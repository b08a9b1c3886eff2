"""The plain FIFO publish path the benchmark compares the fair queue against: Celery
tasks sent straight to the worker pool, in arrival order, as the product did before
every publish went through the fair queue (the product no longer has this path; the
benchmark's worker loads this module with ``--include``). Like a job, each task
updates the search and reference indexes on its worker right after its commit
(``background_work``), so both modes do the same work."""

from django.db import transaction
from wagtail.models import Page

from cms_project.celery import app
from content.jobs import background_work
from content.publishing import publish_page


@app.task(name="bench.fifo_publish", ignore_result=True)
def fifo_publish(page_id: int) -> None:
    with background_work(), transaction.atomic():
        publish_page(page_id=page_id)


@app.task(name="bench.fifo_publish_subtree", ignore_result=True)
def fifo_publish_subtree(root_id: int) -> None:
    """One task for a whole subtree, parents first (what a FIFO pool would run)."""
    root = Page.objects.get(pk=root_id)
    for page_id in root.get_descendants(inclusive=True).values_list("pk", flat=True):
        with background_work(), transaction.atomic():
            publish_page(page_id=page_id)
