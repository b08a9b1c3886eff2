"""What every benchmark script needs: a database of its own, percentiles, unbuffered
output and the environment of a production-like gunicorn pool.

Each benchmark works in a database named after the configured one plus a suffix of
its own, so two benchmarks never drop each other's data nor the development data.
"""

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def out(line: str = "") -> None:
    """Print at once: a benchmark's progress must show while it runs."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def use_bench_database(suffix: str) -> str:
    """Point DATABASE_URL at a fresh database ``<configured name>_<suffix>`` (dropped
    and re-created) on the configured server, and return its URL."""
    import psycopg

    parts = urlsplit(os.environ["DATABASE_URL"])
    name = f"{parts.path.lstrip('/')}_{suffix}"
    admin_url = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(parts._replace(path=f"/{name}"))
    os.environ["DATABASE_URL"] = url
    return url


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def gunicorn_env(*, workers: int) -> dict[str, str]:
    """Production settings over plain HTTP on the loopback, no access log (writing
    one line per request would be part of what is measured)."""
    env = dict(os.environ, GUNICORN_ACCESSLOG="/dev/null")
    env["GUNICORN_WORKERS"] = str(workers)
    env["DJANGO_SETTINGS_MODULE"] = "cms_project.settings.production"
    env.setdefault("SECRET_KEY", "bench-" + "k" * 60)
    # production settings have no default host list; the bench hosts vary per run
    env.setdefault("ALLOWED_HOSTS", "*")
    env["SECURE_SSL_REDIRECT"] = "false"
    return env


def create_unlimited_plan(name: str = "bench-unlimited") -> str:
    """A plan no benchmark load can reach, for benchmarks that measure the pool, not
    the tariff (Django must be set up)."""
    from tenants.models import LIMIT_FIELDS
    from tenants.tariffs.plans import MAX_LIMIT, plan_create

    plan_create(
        name=name,
        title="Benchmark (no effective limits)",
        limits=dict.fromkeys(LIMIT_FIELDS, MAX_LIMIT),
    )
    return name
