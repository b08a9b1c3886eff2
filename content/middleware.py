"""Middleware around Wagtail's own views: its redirects (skipped on the public
schema, which has no table for them) and the page editor's consistent reads."""

from collections.abc import Callable

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django_tenants.utils import get_public_schema_name
from wagtail.contrib.redirects.middleware import RedirectMiddleware


class TenantRedirectMiddleware(RedirectMiddleware):
    def process_response(
        self, request: HttpRequest, response: HttpResponse
    ) -> HttpResponse:
        if connection.schema_name == get_public_schema_name():
            return response
        return super().process_response(request, response)


# The page editor's own view (Wagtail's ``wagtailadmin_pages:edit``).
PAGE_EDITOR = "wagtailadmin_pages:edit"


class PageEditorSnapshotMiddleware:
    """The page editor reads one snapshot of the database while a worker publishes.

    Publishing runs on the shared pool (content.publish_jobs): right after the editor's
    click the browser opens the editor again while the worker may be committing the
    publish or a go-live schedule. Wagtail's edit view reads the page's scheduled
    revision in ``dispatch`` and again, through the page's lock, in ``get``; a commit in
    between gave a lock without its revision and a 500 (``'NoneType' object has no
    attribute 'pk'``). In one REPEATABLE READ transaction both reads agree. Only the
    editor's GET, which writes nothing the worker writes; never inside a transaction
    already open (its isolation cannot change any more)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func, view_args, view_kwargs
    ) -> HttpResponse | None:
        match = request.resolver_match
        if (
            request.method != "GET"
            or match is None
            or match.view_name != PAGE_EDITOR
            or connection.in_atomic_block
        ):
            return None
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            response = view_func(request, *view_args, **view_kwargs)
            render = getattr(response, "render", None)
            if callable(render):
                response = render()  # its template reads the same snapshot
        return response
