"""Writing articles through the headless API: POST /api/v2/articles/ and
PATCH /api/v2/articles/<id>/.

Wagtail's API v2 is read-only; API clients of a headless site also need to write.
Clients authenticate with an API token of the tenant or an admin session
(``content.integrations.authentication``, the one place API clients are
authenticated); a token acts as the user who made it, within its scopes (``write``
to create and edit, ``publish`` to publish), so the tenant's Wagtail permissions
apply unchanged. Writes count against
the plan's ``api_writes_per_minute`` and creation against ``max_pages``.

``"publish": true`` never publishes inside the request: the revision is saved, a
publish job is queued on the fair queue (Wagtail's permission checked first, and again
by the job) and the answer is ``202 Accepted`` with the job's URL
(``/api/v2/jobs/<id>/``), which reports queued / running / done / failed.
"""

import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils.html import escape
from django.utils.text import slugify
from rest_framework import serializers, status
from rest_framework.response import Response
from wagtail.models import Page, Site

from content.api_views import TokenAPIView, api_error
from content.integrations.authentication import require_scope
from content.jobs import EnqueueFailed, HourlyLimitExceeded, job_status
from content.models import ArticlePage, BackgroundJob
from content.publish_jobs import queue_publish
from tenants.tariffs.quotas import QuotaExceeded, check_pages


class ArticleWriteSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=255)
    intro = serializers.CharField(max_length=500, required=False, allow_blank=True)
    text = serializers.CharField(required=False, allow_blank=True)
    publication_date = serializers.DateField(required=False)
    slug = serializers.SlugField(max_length=255, required=False)
    publish = serializers.BooleanField(default=False)


def _article_json(article: ArticlePage) -> dict:
    return {
        "id": article.pk,
        "title": article.title,
        "slug": article.slug,
        "live": article.live,
        "url": article.get_url(),
        "meta": {"type": "content.ArticlePage"},
    }


def _body_from_text(text: str) -> list:
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    return [("paragraph", f"<p>{escape(p)}</p>") for p in paragraphs]


def _job_url(job: BackgroundJob) -> str:
    return reverse("api-job-status", args=[job.pk])


def _job_json(job: BackgroundJob) -> dict:
    return {**job_status(job).as_json(), "url": _job_url(job)}


def _may_publish(article, user) -> bool:
    permissions = article.permissions_for_user(user)
    return permissions.can_publish() and not permissions.page_locked()


def _save(request, article, *, created: bool, publish: bool) -> Response | None:
    """Save the article's revision and, if asked, queue its publish, in one
    transaction (the publish takes over the index updates of the save: see
    ``content.publish_jobs``). Returns the 202 with the job, a readable refusal
    (the revision stays saved as a draft), or None when no publish was asked."""
    job = refusal = None
    try:
        with transaction.atomic():
            revision = article.save_revision(user=request.user)
            if publish:
                try:
                    job = queue_publish(
                        page_id=article.pk,
                        revision_id=revision.pk,
                        user_id=request.user.pk,
                    )
                except (HourlyLimitExceeded, EnqueueFailed) as exc:
                    refusal = exc  # refused before anything of the job was stored
    except EnqueueFailed as exc:
        # the commit kept the revision; the job could not reach the queue
        job, refusal = None, exc
    # the answer shows the saved revision, live or not as the page is now
    article.live = ArticlePage.objects.filter(pk=article.pk, live=True).exists()
    if refusal is not None:
        saved = "created" if created else "saved"
        return api_error(
            "publish_refused",
            f"The article was {saved} as a draft (id {article.pk}) but not queued "
            f"for publishing: {refusal}",
            429 if isinstance(refusal, HourlyLimitExceeded) else 503,
        )
    if job is None:
        return None
    body = {**_article_json(article), "job": _job_json(job)}
    return Response(
        body, status=status.HTTP_202_ACCEPTED, headers={"Location": _job_url(job)}
    )


class ArticlesView(TokenAPIView):
    """POST /api/v2/articles/: a new article. A view of its own (not one view for
    both paths): a PATCH here or a POST to an article is then a readable 405, where
    one view's methods with and without ``page_id`` answered them with a 500."""

    def post(self, request):
        serializer = ArticleWriteSerializer(data=request.data)
        if not serializer.is_valid():
            return Response(
                {"error": "invalid", "fields": serializer.errors},
                status=status.HTTP_400_BAD_REQUEST,
            )
        data = serializer.validated_data
        if data["publish"]:
            require_scope(request, "publish")
        home = Site.objects.get(is_default_site=True).root_page
        home_permissions = home.permissions_for_user(request.user)
        if not home_permissions.can_add_subpage():
            return api_error("forbidden", "You may not add pages to this site.", 403)
        if data["publish"] and not home_permissions.can_publish_subpage():
            return api_error(
                "forbidden", "You may not publish pages on this site.", 403
            )
        try:
            check_pages(request.tenant)
        except QuotaExceeded as exc:
            return api_error("quota_exceeded", str(exc), 403)
        article = ArticlePage(
            title=data["title"],
            intro=data.get("intro", ""),
            publication_date=data.get("publication_date") or datetime.date.today(),
            body=_body_from_text(data.get("text", "")),
            live=False,
            owner=request.user,
        )
        article.slug = data.get("slug") or slugify(data["title"]) or "article"
        if home.get_children().filter(slug=article.slug).exists():
            return api_error(
                "conflict",
                f"A page with the slug {article.slug!r} exists already.",
                409,
            )
        try:
            home.add_child(instance=article)
        except ValidationError as exc:
            return Response(
                {"error": "invalid", "fields": exc.message_dict},
                status=status.HTTP_400_BAD_REQUEST,
            )
        queued = _save(request, article, created=True, publish=data["publish"])
        return queued or Response(
            _article_json(article), status=status.HTTP_201_CREATED
        )


class ArticleView(TokenAPIView):
    """PATCH /api/v2/articles/<id>/: a new revision of an article, published or not."""

    def patch(self, request, page_id: int):
        article = ArticlePage.objects.filter(pk=page_id).first()
        if article is None:
            return api_error("not_found", f"No article with id {page_id}.", 404)
        if not article.permissions_for_user(request.user).can_edit():
            return api_error("forbidden", "You may not edit this article.", 403)
        serializer = ArticleWriteSerializer(data=request.data, partial=True)
        if not serializer.is_valid():
            return Response(
                {"error": "invalid", "fields": serializer.errors},
                status=status.HTTP_400_BAD_REQUEST,
            )
        data = serializer.validated_data
        if data.get("publish"):
            require_scope(request, "publish")
            if not _may_publish(article, request.user):
                return api_error("forbidden", "You may not publish this article.", 403)
        article = article.get_latest_revision_as_object()
        for field in ("title", "intro", "publication_date"):
            if field in data:
                setattr(article, field, data[field])
        if "text" in data:
            article.body = _body_from_text(data["text"])
        queued = _save(request, article, created=False, publish=data.get("publish"))
        return queued or Response(_article_json(article))


class JobStatusView(TokenAPIView):
    """GET /api/v2/jobs/<id>/: a background job of this tenant (the table lives in
    its schema, so another tenant's job id is simply not found). Visible to the user
    who queued it and to users who may edit its page."""

    def get(self, request, job_id: int):
        job = BackgroundJob.objects.filter(pk=job_id).first()
        if job is None or not _may_see(job, request.user):
            return api_error("not_found", f"No job with id {job_id}.", 404)
        return Response(_job_json(job))


def _may_see(job: BackgroundJob, user) -> bool:
    if job.requested_by_id == user.pk or user.is_superuser:
        return True
    page = Page.objects.filter(pk=job.page_id).first() if job.page_id else None
    return page is not None and page.permissions_for_user(user).can_edit()
