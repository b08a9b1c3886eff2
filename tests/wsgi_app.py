"""The WSGI application gunicorn serves, called in process: the page-cache edge and
Django behind it (tests/content/test_edge.py, tests/content/test_busy_pool_pace.py,
tests/isolation/test_privacy_matrix.py). Call it inside ``transaction_kept`` (the
``wsgi_app`` fixture of tests/content/conftest.py)."""

import io
import runpy
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from cms_project.wsgi import application
from tests.conftest import ACME_HOST

ARTICLE = "/acme-launches-the-mark-iv/"


def gunicorn_conf() -> dict:
    """cms_project/gunicorn.conf.py's names, its hooks among them, to be called as
    gunicorn calls them."""
    return runpy.run_path(str(Path(settings.BASE_DIR) / "cms_project/gunicorn.conf.py"))


@contextmanager
def transaction_kept() -> Iterator[None]:
    """Django's handler closes the database connection after each request (as the
    test client's handler does not): that would end the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def wsgi(
    path: str,
    *,
    host: str = ACME_HOST,
    method: str = "GET",
    app: Callable = application,
    **meta,
) -> Answer:
    """``path`` through ``app`` (the application gunicorn serves)."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": host,
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        **meta,
    }
    started = {}

    def start_response(status, headers, exc_info=None):
        started["status"] = int(status.split()[0])
        started["headers"] = dict(headers)

    result = app(environ, start_response)
    body = b"".join(result)
    if hasattr(result, "close"):
        result.close()
    return Answer(started["status"], started["headers"], body)
