"""The one article page every Wagtail set-up of the benchmark serves."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importable before Django is set up (for ARTICLE_PATH)
    from content.models import ArticlePage, HomePage

ARTICLE_SLUG = "benchmark-article"
ARTICLE_PATH = f"/{ARTICLE_SLUG}/"


def add_benchmark_article(home: HomePage) -> ArticlePage:
    """A published article of typical size (intro, five paragraphs and a quote)."""
    from content.models import ArticlePage

    paragraphs = [
        (
            "paragraph",
            f"<p>Paragraph {n}: shared compute serves many sites from one pool of "
            "workers, and this text is long enough to look like a real article "
            "rather than a greeting.</p>",
        )
        for n in range(1, 6)
    ]
    article = ArticlePage(
        title="Benchmark article",
        slug=ARTICLE_SLUG,
        intro="The page every set-up of the overhead benchmark serves.",
        publication_date=datetime.date(2026, 1, 15),
        body=[
            *paragraphs,
            ("quote", {"text": "Measure, do not guess.", "attribution": "Bench"}),
        ],
    )
    home.add_child(instance=article)
    article.save_revision().publish()
    return article
