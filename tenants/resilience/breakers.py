"""One circuit breaker per dependency and process.

A hung dependency makes every call wait for its timeout; with sync workers a few
such calls hold the whole pool. After ``CMS_BREAKER_FAILURES`` failures in a row a
breaker opens: calls fail at once (``DependencyUnavailable``) for
``CMS_BREAKER_COOLDOWN_SECONDS``. Then it is half-open: the next call is the probe
(others still fail fast meanwhile); its success closes the breaker, its failure opens
it for another cool-down. Before that probe, a cheap check with a short timeout
(``probe``: an SSL request to PostgreSQL's postmaster, a PING to Redis) keeps a
still-hung dependency from costing the probing request a full timeout. So a
dependency that comes back is used again within a cool-down, without a restart.

Written here rather than taken from pybreaker: pybreaker holds one lock for the whole
guarded call, so in a threaded worker every call would queue behind a hung one - the
opposite of failing fast. Here the lock guards only the state change.

State is per process (each gunicorn worker and Celery worker decides for itself,
from its own calls); ``/readyz`` shows the answering process's breakers and the
``cms_dependency_breaker_state`` gauge the worst state over live processes.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings

logger = logging.getLogger(__name__)

CLOSED, HALF_OPEN, OPEN = "closed", "half-open", "open"
STATE_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class DependencyUnavailable(Exception):
    """A call refused at once because the dependency's breaker is open."""

    def __init__(self, dependency: str, retry_after: float) -> None:
        super().__init__(
            f"{dependency} is unavailable (circuit open, next try in "
            f"{retry_after:.1f} s)"
        )
        self.dependency = dependency
        self.retry_after = retry_after


class CircuitBreaker:
    """The breaker of one dependency in this process."""

    def __init__(
        self,
        name: str,
        *,
        failures: Callable[[], int],
        cooldown: Callable[[], float],
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        self.name = name
        self._failures_allowed = failures
        self._cooldown = cooldown
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self._probe_started = 0.0
        # a cheap check with a short timeout, run before a real call is let through
        # as the half-open probe (set by the dependency's module)
        self.probe: Callable[[], bool] | None = None

    @property
    def state(self) -> str:
        return self._state

    def retry_after(self) -> float:
        """Seconds until the next probe may run (0 unless open)."""
        if self._state != OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._cooldown() - time.monotonic())

    def _probe_when_due(self) -> None:
        """Open and cooled down: the cheap check first. Still out: another
        cool-down, and no request waited on a timeout."""
        if (
            self.probe is not None
            and self._state == OPEN
            and self.retry_after() <= 0
            and not self.probe()
        ):
            self.failed(DependencyUnavailable(self.name, 0))

    def before_call(self) -> None:
        """Let the call through, or raise ``DependencyUnavailable`` at once."""
        if self._state == CLOSED:
            return
        self._probe_when_due()
        with self._lock:
            if self._state == OPEN:
                wait = self._opened_at + self._cooldown() - time.monotonic()
                if wait > 0:
                    raise DependencyUnavailable(self.name, wait)
                self._set(HALF_OPEN)
            if self._state == HALF_OPEN:
                # a probe whose call never reported back (a reply never read) must
                # not keep the breaker half-open for ever
                stale = time.monotonic() - self._probe_started > 2 * self._cooldown()
                if self._probing and not stale:
                    raise DependencyUnavailable(self.name, self._cooldown())
                self._probing = True
                self._probe_started = time.monotonic()

    def check(self) -> None:
        """Raise ``DependencyUnavailable`` if a call would be refused now, without
        taking the half-open probe slot (the cheap check still runs when due). For
        a step before the call itself, such as connecting: a new connection's
        handshake must not wait a socket timeout on a dependency the cheap check
        finds still out."""
        if self._state == CLOSED:
            return
        self._probe_when_due()
        wait = self.retry_after()
        if wait > 0:
            raise DependencyUnavailable(self.name, wait)
        stale = time.monotonic() - self._probe_started > 2 * self._cooldown()
        if self._state == HALF_OPEN and self._probing and not stale:
            raise DependencyUnavailable(self.name, self._cooldown())

    def succeeded(self) -> None:
        if self._state == CLOSED and not self._failures:
            return
        with self._lock:
            self._failures = 0
            self._probing = False
            if self._state != CLOSED:
                self._set(CLOSED)

    def failed(self, error: BaseException | None = None) -> None:
        with self._lock:
            self._failures += 1
            self._probing = False
            if self._state == HALF_OPEN or self._failures >= self._failures_allowed():
                self._opened_at = time.monotonic()
                if self._state != OPEN:
                    logger.error(
                        "circuit breaker %s opened after %s failure(s): %s",
                        self.name,
                        self._failures,
                        error,
                    )
                self._set(OPEN)

    def released(self) -> None:
        """The call ended without saying anything about the dependency."""
        if self._probing:
            with self._lock:
                self._probing = False

    @contextmanager
    def guard(
        self, failures: tuple[type[BaseException], ...] = (Exception,)
    ) -> Iterator[None]:
        """Run the block as a call: ``failures`` count against the dependency,
        anything else means it answered."""
        self.before_call()
        try:
            yield
        except failures as exc:
            self.failed(exc)
            raise
        except BaseException:
            self.released()
            raise
        else:
            self.succeeded()

    def reset(self) -> None:
        """Back to closed (tests; a process that knows better)."""
        with self._lock:
            self._failures = 0
            self._probing = False
            self._set(CLOSED)

    def _set(self, state: str) -> None:
        previous, self._state = self._state, state
        if previous != state:
            if state == CLOSED:
                logger.warning("circuit breaker %s closed", self.name)
            if self._on_change is not None:
                self._on_change(self.name, state)


def _failures() -> int:
    return int(getattr(settings, "CMS_BREAKER_FAILURES", 2))


def _cooldown() -> float:
    return float(getattr(settings, "CMS_BREAKER_COOLDOWN_SECONDS", 2))


def _report(name: str, state: str) -> None:
    from tenants.observability import metrics

    metrics.record_breaker_state(dependency=name, value=STATE_VALUES[state])


DATABASE, REDIS, BROKER = "database", "redis", "broker"
BREAKERS: dict[str, CircuitBreaker] = {
    name: CircuitBreaker(
        name, failures=_failures, cooldown=_cooldown, on_change=_report
    )
    for name in (DATABASE, REDIS, BROKER)
}
database = BREAKERS[DATABASE]
redis = BREAKERS[REDIS]
broker = BREAKERS[BROKER]


def for_broker() -> CircuitBreaker:
    """The broker's breaker: Redis' own when the broker is the same Redis server
    (the default), so that a hung Redis is known to both at once."""
    from urllib.parse import urlsplit

    def server(url: str) -> tuple:
        parts = urlsplit(url.replace("redis+socket://", "unix://", 1))
        path = parts.path if parts.scheme == "unix" else ""
        return (parts.hostname, parts.port, path)

    broker_url = getattr(settings, "CELERY_BROKER_URL", "") or ""
    redis_url = getattr(settings, "REDIS_URL", "") or ""
    if broker_url and redis_url and server(broker_url) == server(redis_url):
        return redis
    return broker


def states() -> dict[str, str]:
    """Each dependency's breaker state in this process."""
    return {name: breaker.state for name, breaker in BREAKERS.items()}


def reset_all() -> None:
    for breaker in BREAKERS.values():
        breaker.reset()


def publish_states() -> None:
    """Put every breaker's state in this process's metrics (at process start, so
    the gauge exists before anything changes)."""
    for name, breaker in BREAKERS.items():
        _report(name, breaker.state)
