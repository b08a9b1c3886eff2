"""Cached pages a worker answers again from its own memory: no Redis round trip and
no Django request.

A cached page answered through the decision (tenants.request_path.decision) costs a
Redis round trip - the script that admits, counts, looks up and meters - and the
Python around it: most of what a hit costs, and more than the page itself. A worker
that has just answered a page from the cache answers the same request again from
memory, within bounds that keep every rule of the decision:

- **The page** is the copy the decision returned, of the generation it belongs to,
  kept for at most ``PAGE_SECONDS`` (never beyond the page cache's own lifetime
  setting). A purge bumps the tenant's generation and announces it on a Redis
  channel (tenants.request_path.page_cache); every worker listens, and reads what was
  announced (one non-blocking poll of the channel's socket) before it answers a page
  from memory, so a page of an older generation is never answered once the purge was
  announced. While the channel is lost, or after a fork, nothing is answered from
  memory and the pages kept are dropped.
- **The request** must be the very request the decision answered: the same Host
  header, path, query string, scheme (and proxy header) and cookies, so the gate,
  the HTTPS and primary-domain redirects, the URLconf and the cache policy would
  decide the same; the host must still map to the same tenant object (any change to
  tenants, domains or plans replaces it, tenants.registry.resolution).
- **The plan's limits** hold: a page answered from memory counts on the same rate
  counters (its count is sent to Redis within ``SEND_SECONDS``). After a decision, a
  worker answers from memory at most 1/``ALLOWANCE_SHARE`` of the allowance then
  left (the smaller of the tenant's and the client's), and for at most
  ``BUDGET_SECONDS``, before the next request is decided in Redis again. So with N
  workers at most N/``ALLOWANCE_SHARE`` of a window's allowance can pass before
  Redis refuses, and near a limit the allowance is 0: every request is decided in
  Redis, exactly as without this module. The concurrency cap is as the last decision
  found it, for at most ``BUDGET_SECONDS``.
- **The same observation**: the same headers (the rate-limit headers count this
  worker's requests since the decision), the same access-log event and metrics, the
  same usage counts (day counter, traffic window, latency histogram), sent in one
  script within ``SEND_SECONDS``, at the worker's exit (gunicorn's ``worker_exit``)
  and before usage is flushed in this process (tenants.metering.flush). A Redis
  failure loses the counts held, as it loses a request's counts anywhere.
"""

import atexit
import functools
import logging
import os
import select
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.signals import setting_changed
from django.http import HttpRequest

from tenants.adapters.redis import subscription_socket
from tenants.metering import counters
from tenants.metering.counters import METER_LUA
from tenants.models import Tenant
from tenants.observability import log_context, metrics
from tenants.observability.observation import observe_remembered
from tenants.redis_store.keys import cache_redis
from tenants.redis_store.scripts import compose, script
from tenants.registry.resolution import request_host
from tenants.request_path import page_cache
from tenants.request_path.client_address import client_ip
from tenants.request_path.decision import (
    CLIENT_READ_DIMENSION,
    PageDecision,
    rate_headers,
)
from tenants.request_path.gate import GateKind, gate
from tenants.tariffs.limits import RATE_COUNT_LUA, RateCounter

logger = logging.getLogger(__name__)

PAGE_SECONDS = 1.0
BUDGET_SECONDS = 0.1
SEND_SECONDS = 0.25
ALLOWANCE_SHARE = 64
MAX_ALLOWANCE = 1_000
MAX_PAGE_BYTES = 32 * 1024 * 1024
MAX_BUDGETS = 10_000
RESUBSCRIBE_SECONDS = 1.0

# The answer of a hit: status line, headers, body.
Answer = tuple[str, list[tuple[str, str]], bytes]

# KEYS: rate counters, then (day, window, latency) per group of metered requests
# ARGV: number of rate counters, (expiry s, n) per counter, then (field, schema,
#       bucket, expiry s, n) per group
_SEND = compose(
    RATE_COUNT_LUA,
    METER_LUA,
    body="""
local counters = tonumber(ARGV[1])
for i = 1, counters do
  count_rate_by(KEYS[i], tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1]))
end
local k, a = counters + 1, 2 * counters + 2
while k <= #KEYS do
  meter_by(KEYS[k], ARGV[a], KEYS[k + 1], KEYS[k + 2], ARGV[a + 2], ARGV[a + 1],
    tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]))
  k, a = k + 3, a + 5
end
return 1
""",
)


@dataclass(slots=True)
class _Page:
    tenant: Tenant
    host: str  # as the gate reads it
    path: str
    generation: int
    until: float  # time.monotonic()
    status: int
    status_line: str
    headers: tuple[tuple[str, str], ...]  # all but the rate-limit ones and the id
    content: bytes


@dataclass(slots=True)
class _Budget:
    tenant: Tenant
    counters: tuple[tuple[str, int], ...]  # each rate counter's key and expiry (s)
    shown: RateCounter | None  # whose rate-limit headers an answer carries
    shown_count: int  # its count at the decision
    left: int
    until: float  # time.monotonic()
    window_end: float  # time.time() at which the first counter's window ends
    used: int = 0


@functools.cache
def _proxy_header() -> str | None:
    configured = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    return configured[0] if configured else None


def _request_key(environ: dict) -> tuple:
    """Everything of a request the decision's answer depended on, but the client
    (counted per budget) and the request id."""
    proxy = _proxy_header()
    return (
        environ.get("HTTP_HOST"),
        environ.get("SCRIPT_NAME", ""),
        environ.get("PATH_INFO", ""),
        environ.get("QUERY_STRING", ""),
        environ.get("wsgi.url_scheme"),
        environ.get(proxy) if proxy else None,
        environ.get("HTTP_COOKIE", ""),
    )


class _Channel:
    """This process's subscription to the page generations' announcements."""

    def __init__(self, lost) -> None:
        self._lost = lost
        self._pubsub = None
        self._poller = None
        self._sock = None
        self._pid = 0
        self._retry_at = 0.0

    def listen(self) -> bool:
        """Read what was announced since the last call; False while the channel is
        not subscribed in this process."""
        if self._pubsub is None or self._pid != os.getpid():
            return False
        try:
            if self._poller.poll(0):
                while (message := self._pubsub.get_message(timeout=0)) is not None:
                    if message["type"] != "message":
                        raise ConnectionError("the channel was subscribed again")
                    _heard(message["data"])
            if subscription_socket(self._pubsub) is not self._sock:
                # redis-py reconnected (and subscribes again) on its own, maybe on
                # the same file descriptor: announcements made meanwhile were missed
                raise ConnectionError("the channel's connection was replaced")
        except Exception as exc:  # noqa: BLE001 - a lost channel: decide in Redis
            self.lose(exc)
            return False
        return True

    def subscribed(self) -> bool:
        """Subscribed (subscribing now if need be, at most once a second)."""
        if self._pid != os.getpid():
            self._pubsub = None  # the parent's connection, after a fork
            self._lost()
        if self._pubsub is not None:
            return self.listen()
        if time.monotonic() < self._retry_at:
            return False
        pubsub = None
        try:
            pubsub = cache_redis().pubsub()
            pubsub.subscribe(page_cache.generations_channel())
            confirmed = pubsub.get_message(timeout=1.0)
            if not confirmed or confirmed["type"] != "subscribe":
                raise ConnectionError("no confirmation of the subscription")
            sock = subscription_socket(pubsub)
            poller = select.poll()
            poller.register(sock, select.POLLIN)
        except Exception as exc:  # noqa: BLE001 - pages are decided in Redis then
            logger.warning("page generations channel not subscribed: %s", exc)
            self._retry_at = time.monotonic() + RESUBSCRIBE_SECONDS
            _close(pubsub)
            return False
        self._pubsub, self._poller, self._sock = pubsub, poller, sock
        self._pid = os.getpid()
        return True

    def lose(
        self, exc: Exception | None = None, *, retry_after: float = RESUBSCRIBE_SECONDS
    ) -> None:
        if exc is not None:
            logger.warning("page generations channel lost: %s", exc)
        _close(self._pubsub)
        self._pubsub = self._poller = self._sock = None
        self._retry_at = time.monotonic() + retry_after
        self._lost()


def _heard(data: bytes) -> None:
    try:
        schema, generation = data.decode().split()
        page_cache.note_generation(schema, int(generation))
    except ValueError:
        logger.warning("malformed page generation announcement %r", data)


def _close(pubsub) -> None:
    if pubsub is not None:
        try:
            pubsub.close()
        except Exception:  # noqa: BLE001 - closing a connection already gone
            pass


class LocalHits:
    def __init__(self) -> None:
        self._pages: dict[tuple, _Page] = {}
        self._page_bytes = 0
        self._budgets: dict[tuple[str, str | None], _Budget] = {}
        self._channel = _Channel(lost=self._channel_lost)
        self._lock = threading.Lock()  # budgets and held counts
        self._sending = threading.Lock()
        self._rates: dict[tuple[str, int], int] = {}
        self._meters: dict[tuple, int] = {}
        self._sender_pid = 0

    def answer(self, environ: dict) -> Answer | None:
        """The answer to ``environ`` from memory, or None: decide it in Redis."""
        if not self._pages:
            return None
        method = environ.get("REQUEST_METHOD")
        if method != "GET" and method != "HEAD":
            return None
        key = _request_key(environ)
        page = self._pages.get(key)
        if page is None:
            return None
        started = time.perf_counter()
        now = time.monotonic()
        if now >= page.until or not self._channel.listen():
            return None
        tenant = page.tenant
        schema = tenant.schema_name
        if page.generation < page_cache.newest_generation(schema):
            return None
        decided = gate(page.host)
        if decided.kind is not GateKind.TENANT or decided.tenant is not tenant:
            return None
        client = client_ip(environ)
        budget = self._budgets.get((schema, client)) or self._budgets.get(
            (schema, None)
        )
        if (
            budget is None
            or budget.tenant is not tenant
            # the busiest tenants' labels are read on a decided request's metering
            or metrics.tenant_labels.refresh_due()
        ):
            return None
        if budget.left <= 0 or now >= budget.until or time.time() >= budget.window_end:
            self.send()  # so that the next decision counts this worker's answers
            return None
        with self._lock:
            if budget.left <= 0:
                return None
            budget.left -= 1
            budget.used += 1
            used = budget.used
            for counter in budget.counters:
                self._rates[counter] = self._rates.get(counter, 0) + 1
        request_id = log_context.accepted_request_id(
            environ.get(log_context.REQUEST_ID_META)
        )
        headers = list(page.headers)
        if budget.shown is not None:
            headers += rate_headers(budget.shown.decision(budget.shown_count + used))
        headers.append((log_context.REQUEST_ID_HEADER, request_id))
        seconds = time.perf_counter() - started
        self._meter(schema, method, page.path, page.status, seconds)
        observe_remembered(
            tenant=schema,
            request_id=request_id,
            client=client,
            method=method,
            path=page.path,
            status=page.status,
            seconds=seconds,
        )
        return page.status_line, headers, page.content

    def keep(
        self,
        request: HttpRequest,
        decision: PageDecision,
        status_line: str,
        headers: tuple[tuple[str, str], ...],
    ) -> None:
        """Remember a page the decision answered from the cache, with ``headers``
        (all the answer's but the rate-limit ones and the request id), and the
        allowance this worker may answer from memory until it decides again."""
        entry, generation = decision.entry, decision.generation
        if entry is None or generation is None or not request.META.get("HTTP_HOST"):
            return
        if not self._channel.subscribed():
            return
        tenant = request.tenant
        schema = tenant.schema_name
        if generation < page_cache.newest_generation(schema):
            return  # a purge was announced while this page was on its way
        now = time.monotonic()
        key = _request_key(request.META)
        old = self._pages.get(key)
        self._page_bytes += len(entry.content) - (len(old.content) if old else 0)
        if self._page_bytes > MAX_PAGE_BYTES:
            self._drop_pages()
            self._page_bytes = len(entry.content)
        self._pages[key] = _Page(
            tenant=tenant,
            host=request_host(request),
            path=request.path,
            generation=generation,
            until=now + min(PAGE_SECONDS, page_cache.cache_seconds()),
            status=entry.status,
            status_line=status_line,
            headers=headers,
            content=entry.content,
        )
        self._budget(request, decision, now)

    def _budget(self, request: HttpRequest, decision: PageDecision, now: float) -> None:
        counted = decision.counted
        left = MAX_ALLOWANCE
        for counter, count in counted:
            left = min(left, (counter.limit - count) // ALLOWANCE_SHARE)
        per_client = any(c.dimension == CLIENT_READ_DIMENSION for c, _ in counted)
        schema = request.tenant.schema_name
        budget = _Budget(
            tenant=request.tenant,
            counters=tuple((c.key, c.expiry_seconds) for c, _ in counted),
            shown=counted[0][0] if counted else None,
            shown_count=counted[0][1] if counted else 0,
            left=max(0, left),
            until=now + BUDGET_SECONDS,
            window_end=min((c.window_end for c, _ in counted), default=float("inf")),
        )
        with self._lock:
            if len(self._budgets) >= MAX_BUDGETS:
                self._budgets.clear()
            self._budgets[(schema, client_ip(request) if per_client else None)] = budget

    def _meter(
        self, schema: str, method: str, path: str, status: int, seconds: float
    ) -> None:
        counts = counters.counts_of(
            schema=schema, method=method, path=path, status=status, seconds=seconds
        )
        group = (
            counts.live_key,
            counts.live_field or "",
            counts.requests_key,
            counts.latency_key,
            counts.latency_bucket,
            schema,
            counts.ttl,
        )
        with self._lock:
            self._meters[group] = self._meters.get(group, 0) + 1
        if self._sender_pid != os.getpid():
            self._start_sender()

    def _start_sender(self) -> None:
        self._sender_pid = os.getpid()
        threading.Thread(
            target=self._send_every, name="local-hits-sender", daemon=True
        ).start()

    def _send_every(self) -> None:
        pid = os.getpid()
        while self._sender_pid == pid:
            time.sleep(SEND_SECONDS)
            self.send()

    def send(self) -> None:
        """Send the counts held back to Redis, in one script."""
        with self._sending:
            with self._lock:
                rates, self._rates = self._rates, {}
                meters, self._meters = self._meters, {}
            if not rates and not meters:
                return
            keys: list = []
            args: list = [len(rates)]
            for (key, expiry), n in rates.items():
                keys.append(key)
                args += [expiry, n]
            for (day, field, window, latency, bucket, schema, ttl), n in meters.items():
                keys += [day, window, latency]
                args += [field, schema, bucket, ttl, n]
            try:
                script(_SEND)(keys=keys, args=args)
            except Exception as exc:  # noqa: BLE001 - counts lost, as a request's are
                logger.warning("counts of pages answered from memory lost: %s", exc)

    def _drop_pages(self) -> None:
        self._pages = {}
        self._page_bytes = 0

    def _channel_lost(self) -> None:
        """Announcements may have been missed: no page kept can be trusted."""
        self._drop_pages()
        page_cache.forget_generations()

    def forget(self) -> None:
        """Drop the pages and allowances kept (a setting changed)."""
        self._drop_pages()
        with self._lock:
            self._budgets = {}
        _proxy_header.cache_clear()

    def reset(self) -> None:
        """Back to nothing kept or held (tests: their Redis keys are wiped)."""
        with self._sending:
            self.forget()
            with self._lock:
                self._rates, self._meters = {}, {}
            self._channel.lose(retry_after=0)


local_hits = LocalHits()
counters.holds_counts(local_hits.send)
atexit.register(local_hits.send)


def _settings_changed(**kwargs) -> None:
    local_hits.forget()


setting_changed.connect(_settings_changed)
