"""What the request path decided for one request, in one typed object.

The rules of the request path run in several places - the WSGI edge before Django,
the middleware, the rate-limit decorator, the metering after the response - and each
must know what an earlier one did (a slot already taken, a read already counted, a
page already metered by the script that answered it). That knowledge travels here,
in one object stored in the WSGI environ (so it crosses from the edge into Django's
request unchanged), instead of loose attributes on the request and the response.

A leaf module: any part of the platform may import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.http import HttpRequest

if TYPE_CHECKING:
    from tenants.request_path.decision import PageDecision
    from tenants.tariffs.limits import LimitDecision

STATE_KEY = "cms.request_state"


@dataclass
class RequestState:
    # A concurrency slot is held for the request (or it was decided it needs none).
    admitted: bool = False
    # The plan's rate decision already counted for this request, if any.
    rate: LimitDecision | None = None
    # The request's usage was counted by the script that answered it.
    metered: bool = False
    # Which limit or state refused the request (a 429/503), for metrics and logs.
    rejection: str | None = None
    # Redis work that waits for the request's metering round trip (``pipe -> None``).
    deferred: list[Callable[[object], None]] = field(default_factory=list)
    # The public-page decision the edge made, handed on to the middleware;
    # ``page_decided`` with ``page`` None means the edge's round trip failed.
    page_decided: bool = False
    page: PageDecision | None = None
    # A database slot the edge already took for the request (a file descriptor,
    # tenants.resilience.worker_reserve), handed on to the dependency guard.
    database_slot: int | None = None
    # The Wagtail page that answered (set by content's ``before_serve_page`` hook),
    # for the page cache's privacy policy.
    served_page: object | None = None


def request_state(request: HttpRequest) -> RequestState:
    """The request's state, created on first use."""
    state = request.META.get(STATE_KEY)
    if state is None:
        state = request.META[STATE_KEY] = RequestState()
    return state
