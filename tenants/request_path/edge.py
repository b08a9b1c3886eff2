"""The WSGI edge: cached public pages (and refused page requests) answered before
Django's handler.

A cached page costs one Redis round trip (the request decision); what remained was
Django's request handling around it (request signals, a dozen middleware, URL
resolution), several times the cost of the answer itself. ``PageCacheEdge`` wraps the
WSGI application and applies the same rules as the middleware - the gate
(tenants.request_path.gate), the decision (tenants.request_path.decision) - answering
a cache hit itself, and a page request the decision refuses (429, 503), so that a
flood of refused requests costs no Django either. It adds the same headers (Django's
SecurityMiddleware on the answer, rate-limit headers, the request id) and leaves the
same observation (access-log event, metrics, usage counts).

A cache hit, the path that must be cheapest, builds no Django response: the status
line and the header list are put together directly - the stored headers, the hit's
own (``hit_headers``: Vary, cache status, rate limit), the security headers Django's
SecurityMiddleware adds (computed once, by that middleware itself, and again when a
setting changes), the request id - and observed with
``tenants.observability.observation.observe_answered``. Refusals go through
``apply_decision``'s responses; their short page is rendered once per wait
(``tenants.tariffs.limits.refusal_page``) and their usage is counted by the decision's
own round trip, so a refused request costs one round trip and no template. A render
beyond the plan's pace (tenants.tariffs.admission) is answered 503 here too unless a
database slot is free at once with ``CMS_BUSY_POOL_FREE_SLOTS`` more after it: the
pool is busy, and its workers go to the tenants within their pace.

Before any of that, a request this worker answered from the cache a moment ago is
answered again from its memory (tenants.request_path.local_hits: no Redis round trip,
no request object), with the headers ``hit_answer_headers`` built for the decided hit.

A request with a session cookie (a signed-in editor, or anyone who sends one) is
decided here too, without a cache lookup: one door for every public page decision.
Everything else goes to Django unchanged: other methods, hosts without an active
tenant, requests that Django would redirect to HTTPS, and paths that are not public
pages. A request the edge decided but could not answer
(a page to render) carries the decision on to ``PublicPageMiddleware`` in its request
state, so nothing is counted twice.
"""

import functools
import io
import logging
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus

from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpRequest, HttpResponse
from django.middleware.security import SecurityMiddleware

from tenants.domains.policy import add_hsts, canonical_location, hsts_applies
from tenants.metering.counters import defer_to_metering
from tenants.models import Tenant
from tenants.observability import log_context
from tenants.observability.observation import (
    in_tenant_context,
    observe_answered,
    observed,
)
from tenants.registry.resolution import request_host
from tenants.request_path.decision import (
    HIT_HEADERS,
    Outcome,
    PageDecision,
    apply_decision,
    decide_page_request,
    rate_headers,
    take_hit,
)
from tenants.request_path.gate import GateKind, gate
from tenants.request_path.input_guard import carries_nul
from tenants.request_path.local_hits import local_hits
from tenants.request_path.page_cache import CachedPage
from tenants.request_path.public_pages import serves_pages
from tenants.request_state import STATE_KEY, request_state
from tenants.resilience import worker_reserve
from tenants.tariffs.admission import busy_response, release_slot, slots_left_free

logger = logging.getLogger(__name__)


# The answer of a hit: status line, headers, body.
Answer = tuple[str, list[tuple[str, str]], bytes]


@functools.cache
def security_headers(secure: bool) -> tuple[tuple[str, str], ...]:
    """The headers Django's SecurityMiddleware adds to an answer to a request over
    HTTPS (``secure``) or plain HTTP, found by letting that middleware process an
    empty response once: the same headers, from the same settings, without running
    it per hit. A stored header of the same name wins, as in the middleware (which
    only sets headers that are missing)."""
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "443" if secure else "80",
        "wsgi.url_scheme": "https" if secure else "http",
        "wsgi.input": io.BytesIO(),
    }
    request = WSGIRequest(environ)
    bare = HttpResponse()
    before = {name.lower() for name in bare.headers}
    response = SecurityMiddleware(lambda request: bare).process_response(request, bare)
    return tuple(
        (name, value) for name, value in response.items() if name.lower() not in before
    )


@functools.cache
def _security_additions(secure: bool) -> tuple[tuple[str, str, str], ...]:
    """``security_headers(secure)`` with each name lower-cased once per worker (and
    again when a setting changes), not on every hit: the comparison with the stored
    headers is the middleware's case-insensitive one either way."""
    return tuple(
        (name, value, name.lower()) for name, value in security_headers(secure)
    )


@functools.cache
def status_line(status: int) -> str:
    """``200 OK``: a WSGI status line, as Django's handler writes it."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown Status Code"
    return f"{status} {reason}"


def hit_answer_headers(
    entry: CachedPage, secure: bool, tenant: Tenant
) -> tuple[tuple[str, str], ...]:
    """A hit's headers but the rate-limit ones and the request id: the stored ones,
    ``HIT_HEADERS``, the security headers (``secure``: over HTTPS) and HSTS where the
    tenant chose it - what a worker may repeat for the same request
    (tenants.request_path.local_hits)."""
    headers = [*entry.headers, *HIT_HEADERS]
    present = {name.lower() for name, _ in headers}
    for name, value, lowered in _security_additions(secure):
        if lowered not in present:
            headers.append((name, value))
            present.add(lowered)
    if (
        secure
        and hsts_applies(tenant)  # the tenant's own choice
        and "strict-transport-security" not in present
    ):
        headers.append(
            ("Strict-Transport-Security", f"max-age={settings.CMS_HSTS_SECONDS}")
        )
    return tuple(headers)


def _settings_changed(**kwargs) -> None:
    security_headers.cache_clear()
    _security_additions.cache_clear()


setting_changed.connect(_settings_changed)


class PageCacheEdge:
    def __init__(self, application: Callable) -> None:
        self.application = application
        self.security = SecurityMiddleware(lambda request: HttpResponse())

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        answer = local_hits.answer(environ) or self._answer(environ)
        if answer is None:
            body = self.application(environ, start_response)
            self._release_unclaimed(environ)
            return body
        if isinstance(answer, HttpResponse):
            headers = list(answer.items())
            status = f"{answer.status_code} {answer.reason_phrase}"
            content = answer.content
        else:
            status, headers, content = answer
        start_response(status, headers)
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else content]

    def _candidate(self, request: HttpRequest) -> Tenant | None:
        """The request's tenant if the edge may answer it, else None."""
        # with the page cache off too: refusals and a busy pool's pace are decided
        # here, before Django and its database slot
        # with a session cookie too: such a request is never answered from the cache
        # (the cache policy skips its lookup), but its refusals and its pace are
        # decided here like anyone's - a made-up cookie must not step around them
        if request.method not in ("GET", "HEAD"):
            return None
        if carries_nul(request.path_info, request.META.get("QUERY_STRING", "")):
            return None  # Django's NulInputMiddleware answers it
        decided = gate(request_host(request))
        if decided.kind is not GateKind.TENANT:
            return None
        if settings.SECURE_SSL_REDIRECT and not request.is_secure():
            return None
        if canonical_location(request, decided.tenant) is not None:
            return None  # Django redirects it to the primary domain
        if not serves_pages(settings.ROOT_URLCONF, request.path_info):
            return None
        return decided.tenant

    def _answer(self, environ: dict) -> HttpResponse | Answer | None:
        started = time.perf_counter()
        request = WSGIRequest(environ)
        tenant = self._candidate(request)
        if tenant is None:
            return None
        request.tenant = tenant
        # ``django.db.connection`` is a proxy that looks the default connection up
        # on every attribute; the hit path needs it twice, so it looks it up once
        db = connections[DEFAULT_DB_ALIAS]
        db.set_tenant(tenant)
        try:
            decision = decide_page_request(
                request, tenant, seconds_so_far=time.perf_counter() - started
            )
            if decision is None or decision.outcome is Outcome.RENDER:
                if decision is not None and not self._room_to_render(request, decision):
                    return self._refusal(
                        request, started, lambda: self._gives_way(request, decision)
                    )
                # Django must not decide (or count) it again
                state = request_state(request)
                state.page_decided, state.page = True, decision
                return None
            if decision.outcome is Outcome.HIT:
                return self._hit(request, decision, started)
            # a refusal (429 over the rate, 503 over the concurrency cap): a
            # flooding tenant's refused requests cost no Django handler either
            return self._refusal(
                request, started, lambda: apply_decision(request, decision)
            )
        finally:
            db.set_schema_to_public()

    def _hit(
        self, request: HttpRequest, decision: PageDecision, started: float
    ) -> Answer:
        """A cached page: the stored answer plus the hit's headers, the security
        headers and the request id, straight into a WSGI header list."""
        take_hit(request, decision)
        entry = decision.entry
        request_id = log_context.accepted_request_id(
            request.META.get(log_context.REQUEST_ID_META)
        )
        kept = hit_answer_headers(entry, request.is_secure(), request.tenant)
        headers = [
            *kept,
            *rate_headers(decision.rate),
            (log_context.REQUEST_ID_HEADER, request_id),
        ]
        observe_answered(
            request, status=entry.status, started=started, request_id=request_id
        )
        status = status_line(entry.status)
        local_hits.keep(request, decision, status, kept)
        return status, headers, entry.content

    def _refusal(
        self,
        request: HttpRequest,
        started: float,
        respond: Callable[[], HttpResponse],
    ) -> HttpResponse:
        """A refusal answered here, with what Django's middleware would have added
        (HSTS, the security headers) and observed in the tenant's context."""

        def answer() -> HttpResponse:
            response = respond()
            add_hsts(request, response, request.tenant)
            return self.security.process_response(request, response)

        return observed(
            request, lambda: in_tenant_context(request, answer), started=started
        )

    @staticmethod
    def _room_to_render(request: HttpRequest, decision: PageDecision) -> bool:
        """Whether a page to render may go on to Django. A render beyond the plan's
        pace goes on only with a database slot free at once and ``slots_left_free``
        more after it (the pool is not busy); the slot is taken here and handed on
        to the dependency guard."""
        if not decision.beyond_pace:
            return True
        slot = worker_reserve.take_slot(wait=False, leave_free=slots_left_free())
        if slot is False:
            return False
        request_state(request).database_slot = slot  # None: the pool keeps no slots
        return True

    def _gives_way(self, request: HttpRequest, decision: PageDecision) -> HttpResponse:
        """A render beyond the plan's pace while the pool is busy: 503 with
        Retry-After at once (its concurrency slot released in the metering round
        trip), so quiet tenants' requests do not queue behind it."""
        defer_to_metering(request, decision.release)
        return busy_response(request, rejection="busy_pool")

    @staticmethod
    def _release_unclaimed(environ: dict) -> None:
        """Django answered without reaching ``PublicPageMiddleware`` (the tenant map
        changed in between, say): release the slot taken for it."""
        state = environ.get(STATE_KEY)
        if state is not None and state.database_slot is not None:
            worker_reserve.release_slot(state.database_slot)
            state.database_slot = None
        if state is None or not state.page_decided or state.page is None:
            return
        decision, state.page = state.page, None
        try:
            release_slot(decision.schema_name, decision.token)
        except Exception as exc:  # noqa: BLE001 - a held slot expires with its lease
            logger.warning("could not release a concurrency slot: %s", exc)
