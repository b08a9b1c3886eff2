"""Gunicorn settings for the one worker pool shared by every tenant.

Values come from the environment so a host can be sized without editing the file.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Chosen by measurement (make bench-overhead BENCH_ARGS=--sweep, docs/benchmarks.md):
# on 2 cores, sync workers at 2-4 per core serve as many uncached pages as any pool
# and the most cached ones; gthread (2x4, 4x2) was no faster and had worse tails, as
# pages are CPU-bound Python. More workers than cores also keep a slow request (a
# large page, a slow query) from stalling others.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", 1))
# Only gthread workers keep connections alive (sync ones close after each response);
# behind nginx the proxy holds the client's keep-alive.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 5))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 20
# Recycle workers now and then, to bound what a worker accumulates across tenants. Not
# often: a fresh worker loads its host map in one query (post_worker_init) but warms
# its other per-tenant caches (Sites, content types, its connection's catalog) one
# tenant at a time; with a fleet of 1,000 tenants recycling every 5,000 requests cost
# a third of the pool's throughput (docs/benchmarks.md, measured before the preload).
# PostgreSQL's per-connection catalog cache is bounded by DB_CONN_MAX_AGE instead (the
# connection is replaced every minute).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 100_000))
max_requests_jitter = max_requests // 10
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
errorlog = "-"
proc_name = "tenant-cms"
# Gunicorn 24+ opens a control socket at one fixed path per user: several pools on
# host (tests, benchmarks, a staging pool) would fight over it; nothing here uses it.
control_socket_disable = True

# Prometheus multiprocess mode (tenants.observability.metrics): every worker writes
# its figures to files in one directory and a scrape of any worker adds them up.
# Celery workers on this host must be given the same PROMETHEUS_MULTIPROC_DIR to
# appear in the scrape.
_VAR_DIR = os.environ.get(
    "CMS_VAR_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), "var")
)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def on_starting(server) -> None:
    """Default the directory per bound address (set before any worker imports
    prometheus_client), then drop the figures of processes that are gone (an earlier
    run of this pool); files of live processes (a Celery worker sharing the
    directory) stay."""
    address = server.cfg.bind[0].replace(":", "_").replace("/", "_")
    directory = os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", os.path.join(_VAR_DIR, "prometheus", address)
    )
    os.makedirs(directory, exist_ok=True)
    _size_database_slots(server, address)
    for name in os.listdir(directory):
        stem = name.rsplit(".", 1)[0]
        pid = stem.rsplit("_", 1)[-1]
        if name.endswith(".db") and (not pid.isdigit() or not _pid_alive(int(pid))):
            os.remove(os.path.join(directory, name))


def _size_database_slots(server, address: str) -> None:
    """The pool's database slots (tenants.resilience.worker_reserve): its request
    capacity minus the reserved workers' share, kept for cached pages and probes."""
    # default: a quarter of the workers (none for a pool of fewer than 4, where
    # one reserved worker would halve what the pool can render)
    reserved = int(os.environ.get("CMS_RESERVED_WORKERS") or server.cfg.workers // 4)
    threads = max(1, server.cfg.threads)
    capacity = server.cfg.workers * threads
    slots = capacity - reserved * threads
    if slots <= 0 or reserved <= 0:
        return
    os.environ.setdefault("CMS_DB_SLOTS", str(slots))
    os.environ.setdefault(
        "CMS_DB_SLOTS_DIR", os.path.join(_VAR_DIR, "db-slots", address)
    )


def worker_exit(server, worker) -> None:
    """Send the usage counts the worker holds back (pages answered from memory,
    tenants.request_path.local_hits) before it goes."""
    from django.apps import apps

    if not apps.ready or not apps.is_installed("django_tenants"):
        return
    from tenants.request_path.local_hits import local_hits

    local_hits.send()


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker) -> None:
    """Load the host map before the first request (tenants.registry.resolution):
    a worker started or recycled while the database is out still answers every
    tenant's cached pages. Without a database it starts anyway and loads hosts as
    they come."""
    from django.apps import apps

    if not apps.is_installed("django_tenants"):
        return  # the benchmarks' plain and vanilla set-ups
    from django.db import connection

    from tenants.registry.resolution import preload_tenant_map

    try:
        hosts = preload_tenant_map()
    except Exception as exc:  # noqa: BLE001 - a worker must start without a database
        worker.log.warning("host map not preloaded: %s", exc)
    else:
        worker.log.debug("host map preloaded: %d hosts", hosts)
    finally:
        connection.close()
