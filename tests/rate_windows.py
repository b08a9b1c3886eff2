"""Tests that count requests against django-ratelimit's fixed windows."""

import time

from tenants.adapters.ratelimit import window_end


def clear_of_window_edges(*values: str, period: int = 60, margin: int = 15) -> None:
    """Wait until no counter of ``values`` (windows of ``period`` seconds, whose
    edges django-ratelimit staggers per value) ends within ``margin`` seconds, so
    that a test counting requests is not split by a window ending under it (a
    request counted in the old window, the next ones in a fresh one)."""
    for _ in range(4):
        left = min(window_end(value, period) - time.time() for value in values)
        if left >= margin:
            return
        time.sleep(left + 1)
