"""PostgreSQL calls with a client-side deadline and the database breaker.

A hung server (stopped, or its host gone) cancels nothing: ``statement_timeout`` is
enforced by the server, so a query on an open connection would wait for ever (until
gunicorn kills the worker). So every wait on a psycopg connection gets a deadline:
the timeout of the current request kind (``CMS_DB_TIMEOUTS``: short for public
pages, longer for the admin, the server's statement timeout in the background). When
it passes, the connection is closed (its state is unknown) and the call raises
``DatabaseTimeout``, an ``OperationalError`` that Django wraps like any other, so
jobs retry it and requests answer a 503 (``tenants.resilience.outage``).

Connecting (libpq's ``connect_timeout``, 2 s at the least) and waiting both report to
the database breaker; while it is open, both fail at once with
``DatabaseUnavailable``. Its half-open probe first asks the server's postmaster for
a cheap answer (an SSL request, 0.25 s at most) so that a
still-hung server costs the probing request a fraction of a second, not a connect
timeout.

This is the one module that uses psycopg's internals: ``Connection.wait`` (with its
``timeout`` argument) and ``errors._WaitTimeout``
(tests/tenants/test_resilience.py fails when they change).
"""

import contextvars
import logging
import socket
import struct
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.conf import settings

from tenants.resilience.breakers import DependencyUnavailable
from tenants.resilience.breakers import database as breaker

logger = logging.getLogger(__name__)

BACKGROUND, ADMIN, PUBLIC = "background", "admin", "public"

_kind: contextvars.ContextVar[str] = contextvars.ContextVar(
    "cms_db_kind", default=BACKGROUND
)


class DatabaseTimeout(psycopg.OperationalError):
    """PostgreSQL did not answer within the request kind's timeout."""


class DatabaseUnavailable(psycopg.OperationalError):
    """Refused at once: the database breaker is open."""

    def __init__(self, error: DependencyUnavailable) -> None:
        super().__init__(str(error))
        self.retry_after = error.retry_after


def timeout_seconds(kind: str | None = None) -> float:
    timeouts = getattr(settings, "CMS_DB_TIMEOUTS", {})
    return float(timeouts.get(kind or _kind.get(), 0) or 0)


@contextmanager
def request_kind(kind: str) -> Iterator[None]:
    """Database waits inside the block use ``kind``'s timeout."""
    token = _kind.set(kind)
    try:
        yield
    finally:
        _kind.reset(token)


def _before_call() -> None:
    try:
        breaker.before_call()
    except DependencyUnavailable as exc:
        raise DatabaseUnavailable(exc) from None


def _guarded_wait(
    self: psycopg.Connection,
    gen: Any,
    interval: float = 0.1,
    timeout: float | None = None,
) -> Any:
    """``psycopg.Connection.wait`` with the deadline and the breaker."""
    limit = timeout_seconds()
    if limit and (timeout is None or timeout > limit):
        timeout = limit
    _before_call()
    try:
        result = psycopg.Connection.wait(self, gen, interval, timeout)
    except psycopg.errors._WaitTimeout:
        breaker.failed(DatabaseTimeout("statement timeout"))
        # half-way through a query: the connection can never be used again
        self.pgconn.finish()
        raise DatabaseTimeout(
            f"PostgreSQL did not answer within {timeout:g} s"
        ) from None
    except psycopg.OperationalError as exc:
        breaker.failed(exc)
        raise
    except BaseException:
        breaker.released()
        raise
    breaker.succeeded()
    return result


def guarded_connect(connect: Callable[[], psycopg.Connection]) -> psycopg.Connection:
    """Open a connection through the breaker, with the deadline on its waits."""
    _before_call()
    try:
        connection = connect()
    except psycopg.OperationalError as exc:
        breaker.failed(exc)
        raise
    except BaseException:
        breaker.released()
        raise
    breaker.succeeded()
    connection.wait = types.MethodType(_guarded_wait, connection)
    return connection


_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def _postmaster_answers() -> bool:
    """Whether the server's postmaster answers an SSL request in time (it does so
    itself, before any authentication); True when the address is not known."""
    db = settings.DATABASES["default"]
    host = db.get("HOST") or "/var/run/postgresql"
    port = int(db.get("PORT") or 5432)
    wait = float(getattr(settings, "CMS_READINESS_TIMEOUT_SECONDS", 1))
    try:
        if host.startswith("/"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: Any = f"{host}/.s.PGSQL.{port}"
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (host, port)
        with sock:
            sock.settimeout(min(wait, 0.25))
            sock.connect(address)
            sock.sendall(_SSL_REQUEST)
            return sock.recv(1) in (b"S", b"N")
    except OSError as exc:
        logger.warning("PostgreSQL probe failed: %s", exc)
        return False


breaker.probe = _postmaster_answers
