"""Liveness and readiness probes for load balancers and orchestrators.

``/healthz`` answers as long as the process can run a view: it touches nothing else,
so a database outage does not make the orchestrator restart every web process.
``/readyz`` checks what a request needs (PostgreSQL, Redis, the Celery broker), each
with a short timeout, and answers 503 naming the parts that failed so the balancer
stops sending traffic and the operator sees where to look. A dependency whose
circuit breaker (tenants.resilience.breakers) is open in the answering process is
reported ``open`` without being checked, so a hung dependency costs the probe nothing;
the body also shows every breaker's state. Neither is rate-limited,
admitted against a tenant's concurrency cap, logged or counted.

Because ``/readyz`` is anonymous and outside every limit, its result is kept per
process for ``CMS_READINESS_CACHE_SECONDS`` (2 s): a flood of probes opens at most
three connections per process per interval, not three per call, and concurrent
callers in one process wait for the one check that is running (single flight).
"""

import json
import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache

from tenants.resilience import breakers

logger = logging.getLogger(__name__)


def _timeout() -> float:
    return float(getattr(settings, "CMS_READINESS_TIMEOUT_SECONDS", 2))


def check_database() -> None:
    """A fresh connection (with a connect timeout), so a hung pool is noticed too."""
    import psycopg

    from tenants.db_backend.timeouts import bounded_transaction

    db = settings.DATABASES["default"]
    with psycopg.connect(
        host=db.get("HOST") or None,
        port=db.get("PORT") or None,
        dbname=db["NAME"],
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        connect_timeout=max(1, round(_timeout())),
        autocommit=True,
    ) as conn:
        with bounded_transaction(conn, int(_timeout() * 1000)):
            conn.execute("SELECT 1")


def check_redis() -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=_timeout(),
        socket_connect_timeout=_timeout(),
        retry=Retry(NoBackoff(), 0),  # one timeout, not redis-py's four
    )
    try:
        client.ping()
    finally:
        client.close()


def check_broker() -> None:
    from kombu import Connection

    with Connection(
        settings.CELERY_BROKER_URL,
        connect_timeout=_timeout(),
        transport_options={"socket_timeout": _timeout(), "max_retries": 0},
    ) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0)


READINESS_CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "redis": check_redis,
    "broker": check_broker,
}


def _run_checks() -> dict[str, str]:
    """Each part's state: ``ok``, ``fail`` or ``open`` (its breaker is open; the
    reason goes to the log, not to the anonymous caller)."""
    results = {}
    for name, check in READINESS_CHECKS.items():
        breaker = (
            breakers.for_broker() if name == "broker" else breakers.BREAKERS.get(name)
        )
        if breaker is not None and breaker.retry_after() > 0:
            results[name] = "open"
            continue
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            if breaker is not None:
                breaker.failed(exc)
            logger.warning(
                "readiness check %s failed after %.2f s: %s: %s",
                name,
                time.perf_counter() - started,
                type(exc).__name__,
                exc,
            )
            results[name] = "fail"
        else:
            results[name] = "ok"
            if breaker is not None:
                # it answers: a probe that closes the breaker (a failure counts
                # against it like any other call)
                breaker.succeeded()
    return results


_readiness_lock = threading.Lock()
_last_readiness: tuple[float, dict[str, str]] | None = None


def forget_readiness() -> None:
    """Drop the kept result (tests, or after reconfiguring the services)."""
    global _last_readiness
    with _readiness_lock:
        _last_readiness = None


def readiness() -> dict[str, str]:
    """Each part's state: ``ok``, ``fail`` or ``open`` (its breaker is open; the
    reason goes to the log, not to the anonymous caller), at most
    ``CMS_READINESS_CACHE_SECONDS`` old."""
    global _last_readiness
    keep = float(getattr(settings, "CMS_READINESS_CACHE_SECONDS", 2))
    with _readiness_lock:
        now = time.monotonic()
        if _last_readiness is not None and now - _last_readiness[0] < keep:
            return dict(_last_readiness[1])
        results = _run_checks()
        _last_readiness = (time.monotonic(), results)
        return dict(results)


def _json(body: dict, status: int) -> HttpResponse:
    return HttpResponse(
        json.dumps(body), status=status, content_type="application/json"
    )


@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    return _json({"status": "alive"}, 200)


@never_cache
def readyz(request: HttpRequest) -> HttpResponse:
    checks = readiness()
    failing = [name for name, state in checks.items() if state != "ok"]
    states = breakers.states()
    if failing:
        return _json(
            {
                "status": "unavailable",
                "failing": failing,
                "checks": checks,
                "breakers": states,
            },
            503,
        )
    return _json({"status": "ready", "checks": checks, "breakers": states}, 200)
