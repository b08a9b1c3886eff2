"""Page types every tenant's site is built from."""

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
        context["articles"] = (
            ArticlePage.objects.live()
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
