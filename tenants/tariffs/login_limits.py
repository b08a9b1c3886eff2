"""Login limits: every way to present a password (or to ask for a new one) is
limited, per client and per account, before anything is checked.

The doors: the Wagtail admin login, the site's front-end login and the password
forms of restricted pages and document collections (tenant hosts), the operator's
``/ops/login/`` (public host), and password-reset requests. Each door names the
account a request is about (the username, the e-mail address of a reset, the
restriction a password unlocks) and three fixed-window counters decide, in Redis,
before the view runs:

- per client address and account (``CMS_LOGIN_RATE_PER_USER``): one client guessing
  one account's password;
- per client address (``CMS_LOGIN_RATE_PER_IP``): one client trying many accounts;
- per account (``CMS_LOGIN_RATE_PER_ACCOUNT``): many clients (a botnet) guessing one
  account. It is set looser than the others: it also lets an attacker make the
  account wait, never lock it for longer than the window.

A refused attempt is answered 429 without running the view, so it costs two or three
Redis increments and no password hash (the hash is what makes a guess expensive on
the shared pool). Only POSTs count: showing the form is free. Counters are
django-ratelimit's (already used for the tariffs), keyed under the schema (the cache
key function), so one tenant's guessers never lock another tenant's users out. The
client's address comes from tenants.request_path.client_address (trusted proxies).
"""

import functools
import logging
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_ratelimit.core import get_usage

from tenants.request_path.client_address import client_ip
from tenants.tariffs.limits import (
    LimitDecision,
    limited_response,
    record_limiter_failure,
)

logger = logging.getLogger(__name__)

AccountOf = Callable[[HttpRequest, dict], str]
_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def posted_field(name: str) -> AccountOf:
    """The account is a field of the posted form (``username``, ``email``)."""

    def account(request: HttpRequest, view_kwargs: dict) -> str:
        return request.POST.get(name, "").strip().lower()[:254]

    return account


def url_argument(name: str) -> AccountOf:
    """The account is what the URL names (the restriction a password unlocks)."""

    def account(request: HttpRequest, view_kwargs: dict) -> str:
        return f"{name}={view_kwargs.get(name, '')}"

    return account


USERNAME = posted_field("username")


def _refusal(group: str, rate: str, usage: dict) -> LimitDecision:
    period = rate.split("/", 1)[1]
    return LimitDecision(
        dimension=group,
        limit=usage["limit"],
        window_seconds=_PERIOD_SECONDS.get(period[-1], 60),
        remaining=0,
        reset_seconds=max(1, usage["time_left"]),
        limited=True,
    )


def login_limited(view: Callable, *, account: AccountOf = USERNAME) -> Callable:
    """Wrap a view that checks a password (or sends a reset link): its POSTs are
    counted per client and account, per client, and per account, and refused with
    429 before the view runs once any is over."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        client = client_ip(request)
        who = account(request, kwargs)
        checks = [
            ("login_ip_user", f"{client}:{who}", settings.CMS_LOGIN_RATE_PER_USER),
            ("login_ip", client, settings.CMS_LOGIN_RATE_PER_IP),
        ]
        if who:
            checks.append(("login_account", who, settings.CMS_LOGIN_RATE_PER_ACCOUNT))
        refused = None
        for group, value, rate in checks:
            try:
                usage = get_usage(
                    request,
                    group=group,
                    key=lambda _group, _request, value=value: value,
                    rate=rate,
                    increment=True,
                )
            except Exception:  # noqa: BLE001 - fail open like the other limits
                record_limiter_failure()
                logger.warning("login limiter unavailable, failing open")
                continue
            if usage and usage["should_limit"] and refused is None:
                refused = _refusal(group, rate, usage)
        if refused is not None:
            return limited_response(request, refused)
        return view(request, *args, **kwargs)

    return wrapper
