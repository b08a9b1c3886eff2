"""Page types every tenant's site is built from."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from wagtail.admin.panels import FieldPanel
from wagtail.api import APIField
from wagtail.fields import StreamField
from wagtail.models import Page
from wagtail.search import index

from content.blocks import ArticleBodyBlock


class HomePage(Page):
    """A site's root page: an introduction and the latest articles."""

    intro = models.TextField(blank=True)

    content_panels = [*Page.content_panels, FieldPanel("intro")]
    api_fields = [APIField("intro")]
    subpage_types = ["content.ArticlePage"]
    max_count_per_parent = 1

    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        # .public(): an article under any view restriction (its own or an
        # ancestor's) is not named here, for anybody - this page is cached
        context["articles"] = (
            ArticlePage.objects.live()
            .public()
            .child_of(self)
            .order_by("-publication_date", "-pk")[:20]
        )
        return context


class ArticlePage(Page):
    intro = models.CharField(max_length=500, blank=True)
    # indexed: every home page lists articles by it
    publication_date = models.DateField(default=timezone.localdate, db_index=True)
    body = StreamField(ArticleBodyBlock(), blank=True)

    content_panels = [
        *Page.content_panels,
        FieldPanel("intro"),
        FieldPanel("publication_date"),
        FieldPanel("body"),
    ]
    search_fields = [
        *Page.search_fields,
        index.SearchField("intro"),
        index.SearchField("body"),
    ]
    api_fields = [
        APIField("intro"),
        APIField("publication_date"),
        APIField("body"),
    ]
    parent_page_types = ["content.HomePage"]
    subpage_types: list[str] = []


class BackgroundJob(models.Model):
    """One piece of background work of this tenant (a publish, an unpublish, a
    scheduled sweep...). It lives in the tenant's schema, so editors see their own jobs
    and nobody else's; its status is the source of truth that makes a job redelivered
    after a worker died run at most once to completion (``content.jobs``)."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    kind = models.CharField(max_length=64)
    label = models.CharField(max_length=255, blank=True)
    args = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    reason = models.TextField(blank=True)
    result = models.JSONField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # the page the job acts on (the root of a subtree): the editor's status panel and
    # the page listing's "publishing" marker find a page's jobs by it
    page_id = models.IntegerField(null=True, blank=True, db_index=True)
    # the request id of the click (or API call) that queued it, bound into every log
    # line the worker writes while running it
    request_id = models.CharField(max_length=128, blank=True)
    # pages done / total of a job that runs in slices (a subtree publish)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.label or f"{self.kind} #{self.pk}"


def new_home_page(tenant) -> HomePage:
    """A new tenant's home page, unsaved (tenants.provisioning adds it to the tree)."""
    return HomePage(title=tenant.name, slug="home", intro=f"Welcome to {tenant.name}.")


# Integrations (API tokens, webhooks) keep their models in their own module.
from content.integrations.models import (  # noqa: E402, F401
    ApiTokenGrant,
    WebhookDelivery,
    WebhookEndpoint,
)
