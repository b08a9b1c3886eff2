"""Redis connections that report to the Redis circuit breaker.

Every django-redis alias (so the page cache, the rate counters, admission slots,
metering, the fair queue and the tenant map's generation) builds its connections
here (``CONNECTION_FACTORY`` in the settings). Each command's send and read go
through the breaker: timeouts and connection errors count, and while the breaker is
open a command raises ``RedisUnavailable`` (a ``redis.ConnectionError``, so every
caller's existing fail-open / fail-closed handling applies) without touching the
socket. A hung Redis then costs a few socket timeouts per process, after which the
limiter, admission, metering and cache calls are skipped at once, and they resume
by themselves after the next successful probe.

redis-py's own retries are cut to one reconnect after a dropped connection (a
restarted server), never a retry after a timeout: a retry doubles every wait.
"""

import logging
import socket
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django_redis.pool import ConnectionFactory
from redis.backoff import NoBackoff
from redis.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from tenants.resilience.breakers import DependencyUnavailable
from tenants.resilience.breakers import redis as breaker

FAILURES = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisUnavailable(RedisConnectionError):
    """Refused at once: the Redis breaker is open."""


class _Guarded:
    _handshaking = False

    def connect(self) -> None:
        # the pool connects before it hands a connection out, outside any command
        if self._sock is None:
            try:
                breaker.check()
            except DependencyUnavailable as exc:
                raise RedisUnavailable(str(exc)) from None
        try:
            super().connect()
        except FAILURES as exc:
            breaker.failed(exc)
            raise

    @property
    def handshaking(self) -> bool:
        """True while this connection sends its own handshake (HELLO, SELECT): a
        command no caller asked for (the tests' round-trip count leaves it out)."""
        return self._handshaking

    def on_connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        # the handshake (HELLO, CLIENT SETINFO, SELECT) is part of the call that
        # connects: the breaker already let that call through (it may be the
        # half-open probe). The locked redis-py (8.x) calls this one from
        # connect, and its on_connect ends here too; a redis-py without this
        # method would need on_connect overridden instead.
        self._handshaking = True
        try:
            super().on_connect_check_health(*args, **kwargs)
        finally:
            self._handshaking = False

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._handshaking:
            try:
                breaker.before_call()
            except DependencyUnavailable as exc:
                raise RedisUnavailable(str(exc)) from None
        try:
            super().send_packed_command(command, check_health)
        except FAILURES as exc:
            breaker.failed(exc)
            raise
        except BaseException:
            breaker.released()
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            response = super().read_response(*args, **kwargs)
        except FAILURES as exc:
            breaker.failed(exc)
            raise
        except BaseException:
            # an error reply (a missing script...) is an answer
            breaker.succeeded()
            raise
        breaker.succeeded()
        return response


class GuardedConnection(_Guarded, Connection):
    pass


class GuardedUnixConnection(_Guarded, UnixDomainSocketConnection):
    pass


class GuardedConnectionFactory(ConnectionFactory):
    """django-redis' factory, with guarded connections and one reconnect."""

    def make_connection_params(self, url: str) -> dict[str, Any]:
        params = super().make_connection_params(url)
        params["connection_class"] = (
            GuardedUnixConnection if url.startswith("unix:") else GuardedConnection
        )
        params["retry"] = Retry(
            NoBackoff(), 1, supported_errors=(RedisConnectionError,)
        )
        return params


class OpenBreakerFilter(logging.Filter):
    """Drops django-redis' "Exception ignored" record (a traceback per cache call)
    for calls the open breaker refused: the breaker logged the outage once."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        while error is not None:
            if isinstance(error, RedisUnavailable):
                return False
            error = error.__cause__ or error.__context__
        return True


PROBE_SECONDS = 0.1


def _redis_answers() -> bool:
    """Whether Redis answers a PING on a fresh socket within 0.1 s (any reply, an
    authentication error included, means it is alive)."""
    url = urlsplit(getattr(settings, "REDIS_URL", ""))
    try:
        if url.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: Any = url.path
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (url.hostname or "127.0.0.1", url.port or 6379)
        with sock:
            sock.settimeout(PROBE_SECONDS)
            sock.connect(address)
            sock.sendall(b"PING\r\n")
            return bool(sock.recv(1))
    except OSError:
        return False


breaker.probe = _redis_answers
