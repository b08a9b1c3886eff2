"""Database slots: a share of the pool's workers stays free for cached pages.

With sync workers a request waiting on a slow or hung database holds its worker;
enough of them hold the whole pool, and cached pages - which need no database - wait
behind them. So a request that goes to Django (tenants.request_path.edge answers
cached pages before that) first takes one of ``CMS_DB_SLOTS`` slots shared by the
pool: by default its workers minus ``CMS_RESERVED_WORKERS``. When none is free within
``CMS_DB_SLOT_WAIT_SECONDS`` the request gets a 503 with Retry-After, and the
reserved workers go on serving cached pages and health probes.

A slot is an exclusive ``flock`` on one of N files in the pool's directory: taking
one costs a few system calls, needs neither Redis nor the database, and the kernel
releases it when a worker dies holding it (gunicorn killing a stuck worker leaks
nothing).
"""

import fcntl
import os
import time
from pathlib import Path

from django.conf import settings


def slot_count() -> int:
    return int(getattr(settings, "CMS_DB_SLOTS", 0) or 0)


def slots_dir() -> Path | None:
    directory = getattr(settings, "CMS_DB_SLOTS_DIR", "")
    return Path(directory) if directory else None


def take_slot(*, wait: bool = True, leave_free: int = 0) -> int | None | bool:
    """Take a free slot: its file descriptor, None when slots are off, False when
    none freed up in time (``wait=False``: none is free now - the pool is busy).

    ``leave_free`` (with ``wait=False``): take one only if that many others stay
    free after it, for whoever comes next - a request that may give way leaves the
    pool's last slots to those that may not."""
    count, directory = slot_count(), slots_dir()
    if count <= 0 or directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + (
        float(getattr(settings, "CMS_DB_SLOT_WAIT_SECONDS", 0.5)) if wait else 0
    )
    start = os.getpid() % count  # spread the workers over the files
    swept_again = False
    while True:
        taken = None
        for offset in range(count):
            descriptor = _try_lock(directory / f"slot-{(start + offset) % count}")
            if descriptor is None:
                continue
            if taken is None:
                taken, free_after = descriptor, 0
                if leave_free <= 0:
                    return taken
                continue
            os.close(descriptor)  # only counted: another slot free now
            free_after += 1
            if free_after >= leave_free:
                return taken
        if taken is not None:
            os.close(taken)  # too few left free after it
            return False
        if time.monotonic() >= deadline:
            return False
        if not swept_again:
            # a request counting free slots (``leave_free``) holds each for an
            # instant: one more sweep at once before a sleep of 10 ms
            swept_again = True
            continue
        time.sleep(0.01)


def _try_lock(path: Path, *, create: bool = True) -> int | None:
    """The slot file's descriptor, locked; None when another process holds it (or,
    without ``create``, when the file does not exist)."""
    try:
        descriptor = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


def release_slot(descriptor: int) -> None:
    """Closing the file releases its lock."""
    os.close(descriptor)


def slots_in_use() -> int:
    """How many slots are held now (for /readyz)."""
    count, directory = slot_count(), slots_dir()
    if count <= 0 or directory is None or not directory.exists():
        return 0
    used = 0
    for index in range(count):
        path = directory / f"slot-{index}"
        if not path.exists():
            continue  # never taken
        descriptor = _try_lock(path, create=False)
        if descriptor is None:
            used += 1
        else:
            os.close(descriptor)
    return used
