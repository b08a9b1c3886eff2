"""Serving uploaded media per tenant.

Files live in the default storage, in the tenant's folder (``tenants.media``:
MEDIA_ROOT/tenants/<schema>/ or the same keys in a bucket), and their URLs carry the
schema. A URL is
served only on the hosts of the tenant whose schema it names, so one tenant's image URL
gives a 404 on another tenant's host. nginx passes /media/ to this view
(deploy/nginx.conf): it alone knows which tenant owns a host.

Two more rules, because these are files editors (or an attacker with an editor's
account) uploaded, answered from the tenant's own origin:

- A document's file is served here only if its collection is not restricted
  (Wagtail's collection privacy); a restricted document is reachable only through
  Wagtail's checked view, ``/documents/<id>/<name>``. A file under ``documents/`` that
  no document owns (a replaced file, say) is not served at all.
- Nothing is ever run by the browser in the tenant's origin: every answer carries a
  sandboxing Content-Security-Policy and ``nosniff``, and anything but a raster image
  or a PDF or plain text (HTML, SVG, XML, JavaScript...) is sent as an attachment.
  ``protect_served_file`` applies the same to Wagtail's document view.
"""

import functools
import mimetypes
import posixpath
from collections.abc import Callable

from django.core.exceptions import SuspiciousOperation
from django.core.files.storage import Storage, default_storage
from django.db import connection
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.views.static import serve

from tenants.media import trees

DOCUMENTS_FOLDER = "documents/"
# Served inline: what a browser shows but never runs.
INLINE_CONTENT_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
        "image/x-ms-bmp",
        "image/tiff",
        "application/pdf",
        "text/plain",
        "text/csv",
    }
)
# No script, no plugin, no form, no navigation of the top window; the page is in a
# unique origin of its own (sandbox), so even an inline file cannot reach the
# tenant's cookies or admin. Images and styles may load (a PDF viewer needs them).
SANDBOX_POLICY = (
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"
)


def _content_type(response: HttpResponse) -> str:
    return response.get("Content-Type", "").split(";")[0].strip().lower()


def protect_served_file(response: HttpResponse) -> HttpResponse:
    """Headers that keep an uploaded file from running in the tenant's origin. Only
    for a file's bytes (a streamed answer), not for the page a view answers instead
    (Wagtail's password form for a restricted document must stay a working page)."""
    if response.status_code != 200 or not response.streaming:
        return response
    response["Content-Security-Policy"] = SANDBOX_POLICY
    response["X-Content-Type-Options"] = "nosniff"
    if _content_type(response) not in INLINE_CONTENT_TYPES:
        disposition = response.get("Content-Disposition", "")
        if not disposition.lower().startswith("attachment"):
            _, _, parameters = disposition.partition(";")
            response["Content-Disposition"] = "attachment" + (
                f";{parameters}" if parameters else ""
            )
    return response


def protected(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap a view that answers with an uploaded file (Wagtail's document view)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        return protect_served_file(view(request, *args, **kwargs))

    return wrapper


def _document_is_public(name: str) -> bool:
    """Whether the document stored as ``name`` exists and no view restriction
    applies to its collection or the collection's ancestors."""
    from wagtail.documents import get_document_model

    document = (
        get_document_model()
        .objects.select_related("collection")
        .filter(file=name)
        .first()
    )
    if document is None:
        return False
    return not document.collection.get_view_restrictions().exists()


def serve_tenant_media(request: HttpRequest, schema: str, path: str) -> HttpResponse:
    if schema != connection.schema_name:
        raise Http404("No such file.")
    path = posixpath.normpath(path).lstrip("/")  # "images/../documents/x" too
    if path.startswith(".."):
        raise Http404("No such file.")
    if path.startswith(DOCUMENTS_FOLDER) and not _document_is_public(path):
        # restricted (or nobody's): only Wagtail's checked view may serve it
        raise Http404("No such file.")
    # the storage uploads go to, rooted at this tenant's folder (the request's schema,
    # checked above): one per process, its bucket connection reused
    root = trees.local_root(default_storage)
    try:
        if root is not None:
            response = serve(request, path, document_root=root)
        else:
            response = _stream(default_storage, path)
    except SuspiciousOperation:  # "../" out of the tenant's folder
        raise Http404("No such file.") from None
    return protect_served_file(response)


def _stream(files: Storage, path: str) -> FileResponse:
    """A file of a tree that is not on this host's disk (a bucket), read through."""
    try:
        handle = files.open(path, "rb")
    except (FileNotFoundError, IsADirectoryError):
        raise Http404("No such file.") from None
    content_type, encoding = mimetypes.guess_type(path)
    response = FileResponse(
        handle, content_type=content_type or "application/octet-stream"
    )
    if encoding:
        response["Content-Encoding"] = encoding
    return response
