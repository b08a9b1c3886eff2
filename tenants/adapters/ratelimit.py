"""django-ratelimit's private names, used in this module only.

The public page path counts a request on django-ratelimit's own counter inside one
Lua round trip (tenants.request_path.decision), so it needs the key, window and expiry
``get_usage`` would use. django-ratelimit computes them in private functions; this
module is the one place that calls them, and tests/tenants/test_adapters.py fails
loudly if ``get_usage`` stops counting on the key computed here.
"""

import functools

from django_ratelimit import ALL
from django_ratelimit.core import (
    EXPIRATION_FUDGE,
    _get_window,
    _make_cache_key,
    _split_rate,
)


@functools.lru_cache(maxsize=1024)  # a few rates per plan, asked on every request
def split_rate(rate: str) -> tuple[int, int]:
    """``"5/m"`` -> ``(5, 60)``: the count and the window in seconds."""
    return _split_rate(rate)


def window_end(value: str, period: int) -> int:
    """The end (Unix time) of the fixed window ``value`` is counted in now."""
    return _get_window(value, period)


def counter_key(*, group: str, window: int, rate: str, value: str) -> str:
    """The cache key (before the cache's own key function) of the counter."""
    return _make_cache_key(group, window, rate, value, ALL)


def counter_expiry(period: int) -> int:
    """How long django-ratelimit keeps a counter of a ``period``-second window."""
    return period + EXPIRATION_FUDGE
