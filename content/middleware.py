"""Middleware around Wagtail's own views: its redirects (skipped on the public
schema, which has no table for them) and the page editor's consistent reads."""

from collections.abc import Callable

from django.db import OperationalError, connection, transaction
from django.http import HttpRequest, HttpResponse
from django_tenants.utils import get_public_schema_name
from psycopg.errors import SerializationFailure
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
# Reads of the page editor on a fresh snapshot after a refused commit, before it runs
# as Django would run it.
SNAPSHOT_ATTEMPTS = 3


class PageEditorSnapshotMiddleware:
    """The page editor reads one snapshot of the database while a worker publishes.

    Publishing runs on the shared pool (content.publish_jobs): right after the editor's
    click the browser opens the editor again while the worker may be committing the
    publish or a go-live schedule. Wagtail's edit view reads the page's scheduled
    revision in ``dispatch`` and again, through the page's lock, in ``get``; a commit in
    between gave a lock without its revision and a 500 (``'NoneType' object has no
    attribute 'pk'``). In one REPEATABLE READ transaction both reads agree. Only the
    editor's GET; never inside a transaction already open (its isolation cannot change
    any more).

    The GET writes a little (the editor's subscription to the page, checked against
    the page's row when it commits): when the worker updated that row meanwhile,
    PostgreSQL refuses the commit ("could not serialize access"), and the view runs
    again on a fresh snapshot - the usual answer to a serialization failure - with
    the messages of the failed attempt taken back. After ``SNAPSHOT_ATTEMPTS`` the
    view runs as Django would run it."""

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
        for _ in range(SNAPSHOT_ATTEMPTS):
            queued = _queued_messages(request)
            try:
                return self._in_one_snapshot(request, view_func, view_args, view_kwargs)
            except OperationalError as exc:
                if not isinstance(exc.__cause__, SerializationFailure):
                    raise
                _take_back_messages(request, queued)
        return None

    @staticmethod
    def _in_one_snapshot(request, view_func, view_args, view_kwargs) -> HttpResponse:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            # the template renders after the commit, as usual (rendering shows the
            # queued messages, which a repeated attempt must be able to take back)
            return view_func(request, *view_args, **view_kwargs)


def _queued_messages(request: HttpRequest) -> list | None:
    """The messages queued so far (Django's message storage keeps them in
    ``_queued_messages`` until the response; there is no public way to drop one)."""
    storage = getattr(request, "_messages", None)
    queued = getattr(storage, "_queued_messages", None)
    return list(queued) if queued is not None else None


def _take_back_messages(request: HttpRequest, queued: list | None) -> None:
    storage = getattr(request, "_messages", None)
    if queued is not None and storage is not None:
        storage._queued_messages[:] = queued
