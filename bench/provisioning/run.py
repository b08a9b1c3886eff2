"""Provisioning benchmark: clone-based tenant creation, fleet migrations, and whether
request throughput holds as the number of tenants grows.

Runs in databases of its own (``<name>_bench`` and ``<name>_bench_small``, dropped and
re-created), so it never touches the development data. Steps, all in one run:

1. create ``--create`` tenants by cloning (timed one by one) and a few by running every
   migration (the django-tenants default) for comparison;
2. grow the fleet to ``--noop-fleet`` tenants and time a no-op ``migrate`` over it;
3. grow to ``--fleet`` tenants; beside it, a second database holds a fleet of 10;
4. one gunicorn pool per database, the same settings: requests per second spread over
   every host of each, measured in alternating rounds so that whatever else the
   machine does falls on both sides alike; worker memory of each pool. The pools reach
   PostgreSQL through pgbouncer in transaction mode, as production web hosts do
   (docs/scaling.md), and the uncached comparison runs once more with the pools
   connected straight to PostgreSQL (``..._uncached_direct``): the cost of a
   recycled worker's new connection warming PostgreSQL's catalog one tenant schema at
   a time, which a pooler's long-lived server connections do not pay again.

The last line is ``RESULT create_p50_s=... create_p95_s=... migrate_create_p50_s=...
noop_migrate_500_s=... rps_ratio_1000_vs_10=... rps_ratio_1000_vs_10_uncached=...
rps_ratio_1000_vs_10_uncached_direct=...``.

Usage: make bench-provisioning  (options: python bench/provisioning/run.py --help)
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import dj_database_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
from bench.common import (
    LOOPBACK_PROXIES,
    RESULTS,
    Run,
    bootstrap_ratio,
    client_addresses,
    free_port,
    gunicorn_env,
    interleaved,
    median,
    out,
    percentile,
    pool_log,
    start_pool,
    use_bench_database,
)
from cms_project.pooler import Pooler, start_pgbouncer

# the untimed growth of the fleet opens a new database connection this often
GROWTH_RECONNECT_EVERY = 25


def create_tenants(start: int, stop: int, *, timed: bool) -> list[float]:
    """Tenants ``start`` to ``stop`` by the product's ``tenant_create``, from a new
    database connection; one after the other on it when ``timed`` (as a bulk import
    does); growing the fleet (untimed), on a new connection every
    ``GROWTH_RECONNECT_EVERY``: a PostgreSQL backend that has created many schemas
    slows down every later creation on it (0.35 s per tenant at first, 5.6 s by the
    775th on one connection; 0.44 s again right after a reconnect), which made
    growing to 1,000 tenants take over an hour and the run never finish."""
    from django.db import connection

    from tenants.provisioning.creation import tenant_create

    seconds = []
    for index in range(start, stop):
        if index == start or (
            not timed and (index - start) % GROWTH_RECONNECT_EVERY == 0
        ):
            connection.close()
        began = time.perf_counter()
        tenant_create(
            slug=f"bench{index:04d}",
            name=f"Bench {index}",
            domains=[f"bench{index:04d}.localhost"],
            plan="enterprise",
            admin_password="bench-password-1",
        )
        seconds.append(time.perf_counter() - began)
        if not timed and (index + 1) % 100 == 0:
            out(f"  ... {index + 1} tenants")
    return seconds


def create_by_migrating(count: int) -> list[float]:
    """django-tenants' default: CREATE SCHEMA and run every migration."""
    from django.core.management import call_command
    from django.db import connection

    from tenants.models import Plan, Tenant

    plan = Plan.objects.get(name="free")
    seconds = []
    for index in range(count):
        slug = f"migrated{index}"
        began = time.perf_counter()
        Tenant.objects.create(schema_name=slug, name=slug, plan=plan)
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{slug}"')
        call_command(
            "migrate_schemas",
            schema_name=slug,
            tenant=True,
            interactive=False,
            verbosity=0,
        )
        connection.set_schema_to_public()
        seconds.append(time.perf_counter() - began)
    return seconds


def seed_small_fleet(url: str, count: int) -> None:
    """Migrate a second database and give it ``count`` tenants, in a process of its
    own (this one's Django is bound to the large fleet's database)."""
    env = dict(os.environ, DATABASE_URL=url)
    subprocess.run(
        [sys.executable, __file__, "--seed-only", str(count)], env=env, check=True
    )


def pool_rss_mb(process) -> float:
    import psutil

    workers = psutil.Process(process.pid).children()
    return sum(worker.memory_info().rss for worker in workers) / 2**20


def worker_boots(name: str) -> int:
    """Workers the pool has booted so far (its log): recycled ones included."""
    log = pool_log(f"provisioning-{name}")
    return log.read_text(errors="replace").count("Booting worker")


VISITORS = 1000  # client addresses per fleet's load


def visitor_targets(hosts: list[str]) -> list:
    """``VISITORS`` requests' worth of targets over ``hosts`` in turn, each from a
    visitor of its own: the same spread of clients for a fleet of 10 as of 1,000."""
    from bench.loadgen import Target

    visitors = client_addresses("198.18.0.0/15", max(VISITORS, len(hosts)))
    return [
        Target(hosts[n % len(hosts)], "/", visitor)
        for n, visitor in enumerate(visitors)
    ]


def compare_rps(
    small_url: str,
    small_hosts: list[str],
    hosts: list[str],
    *,
    seconds: float,
    rounds: int,
    cached: bool,
    max_requests: int,
    pooler: Pooler | None,
) -> tuple[dict, dict, tuple[float, float, float], int]:
    """Both pools up at once (same settings, 2 sync workers each), every host of
    each warmed, then interleaved wrk rounds spread over every host. Uncached
    (``cached`` False): the page cache off and workers recycled every
    ``max_requests`` requests, so that fresh workers meeting every tenant again
    happen inside the measured window. With ``pooler`` both pools reach their
    databases through it (``CMS_DB_TRANSACTION_POOLING``, as behind pgbouncer in
    production), without it straight. Returns both pools' figures, the ratio with its
    interval and the workers recycled while measuring."""
    from bench.loadgen import sweep, wrk_closed_loop
    from cms_project import devstack

    kind = "cached" if cached else "uncached"
    # the load comes from many visitors (X-Forwarded-For, believed from loopback):
    # from one address the 10-tenant fleet met the plan's per-client share (546
    # refusals in the first default run) where the 1,000-tenant fleet never does
    overrides = {
        "GUNICORN_MAX_REQUESTS": str(max_requests),
        "CMS_TRUSTED_PROXIES": ",".join(LOOPBACK_PROXIES),
    }
    if not cached:
        overrides["CMS_PAGE_CACHE_SECONDS"] = "0"
    urls = {"small": small_url, "large": os.environ["DATABASE_URL"]}
    if pooler is not None:
        overrides["CMS_DB_TRANSACTION_POOLING"] = "true"
        urls = {
            name: pooler.url(dj_database_url.parse(url)["NAME"])
            for name, url in urls.items()
        }
    envs = {
        "small": gunicorn_env(workers=2)
        | overrides
        | {
            "DATABASE_URL": urls["small"],
            # the same Redis database, keys of their own (same schema names)
            "CMS_REDIS_KEY_PREFIX": "bench-small",
        },
        "large": gunicorn_env(workers=2) | overrides | {"DATABASE_URL": urls["large"]},
    }
    fleets = {"small": small_hosts, "large": hosts}
    ports = {name: free_port() for name in fleets}
    pools = {}
    rows: dict[str, dict] = {}
    try:
        for name in fleets:
            pools[name] = start_pool(
                f"provisioning-{name}", ports[name], env=envs[name], workers=2
            )
        for name, fleet in fleets.items():
            # every tenant's host map entry and connections warm in both workers
            sweep(ports[name], fleet, repeat=3, threads=4)
        boots_before = {name: worker_boots(name) for name in fleets}

        def measure_round(name: str) -> tuple:
            """One round of wrk on a pool, and the workers it booted meanwhile."""
            booted = worker_boots(name)
            result = wrk_closed_loop(
                ports[name],
                visitor_targets(fleets[name]),
                seconds=seconds / rounds,
                connections=4,
            )
            return result, worker_boots(name) - booted

        measured = interleaved(
            {name: (lambda name=name: measure_round(name)) for name in fleets},
            rounds=rounds,
        )
        for name, measured_rounds in measured.items():
            results = [result for result, _ in measured_rounds]
            rows[name] = {
                "tenants": len(fleets[name]),
                "kind": kind,
                "through_pooler": pooler is not None,
                "rps": median([r.ok_rps for r in results]),
                "rps_rounds": [r.ok_rps for r in results],
                "p50_ms": median([r.p50_ms for r in results]),
                "p99_ms": median([r.p99_ms for r in results]),
                "requests": sum(r.requests for r in results),
                "non_200": sum(r.not_ok for r in results),
                # per round: a round that served nothing says here whether wrk
                # timed out or could not connect
                "timeouts_rounds": [r.timeouts for r in results],
                "socket_errors_rounds": [
                    r.connect_errors + r.read_errors + r.write_errors for r in results
                ],
                "worker_rss_mb": pool_rss_mb(pools[name]),
                "workers_recycled": worker_boots(name) - boots_before[name],
                # a recycled worker boots Django and Wagtail again: a round that
                # met more recycles served fewer pages
                "workers_recycled_rounds": [booted for _, booted in measured_rounds],
            }
    finally:
        for process in pools.values():
            devstack.stop_process(process)
    ratio = bootstrap_ratio(rows["large"]["rps_rounds"], rows["small"]["rps_rounds"])
    recycled = sum(row["workers_recycled"] for row in rows.values())
    return rows["small"], rows["large"], ratio, recycled


def compare_fleets(small_url: str, args, *, cached: bool, pooler: Pooler | None):
    """The fleet of 10 in ``small_url`` against ``--fleet`` tenants in DATABASE_URL."""
    return compare_rps(
        small_url,
        [f"bench{i:04d}.localhost" for i in range(10)],
        [f"bench{i:04d}.localhost" for i in range(args.fleet)],
        seconds=args.seconds,
        rounds=args.rounds,
        cached=cached,
        max_requests=100_000 if cached else args.max_requests,
        pooler=pooler,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--create", type=int, default=100)
    parser.add_argument("--migrate-creates", type=int, default=3)
    parser.add_argument("--noop-fleet", type=int, default=500)
    parser.add_argument("--fleet", type=int, default=1000)
    parser.add_argument(
        "--seconds", type=float, default=80, help="measured seconds per fleet"
    )
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument(
        "--create-at-fleet",
        type=int,
        default=30,
        help="tenants created (timed) once the fleet has --fleet tenants",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=300,
        help="gunicorn max_requests in the uncached comparison: workers recycle "
        "inside the measured window",
    )
    parser.add_argument("--seed-only", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (10 <= args.create + 10 <= args.noop_fleet <= args.fleet):
        parser.error("need 10 + --create <= --noop-fleet <= --fleet")
    if args.rounds < 2 or args.create_at_fleet < 3:
        parser.error("need --rounds >= 2 and --create-at-fleet >= 3")
    if args.seed_only is None:
        run = Run("provisioning", parser, args)

    if args.seed_only is None:
        configured = os.environ["DATABASE_URL"]
        small_url = use_bench_database("bench_small")
        os.environ["DATABASE_URL"] = configured
        large_url = use_bench_database("bench")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms_project.settings.dev")
    import django

    django.setup()
    from django.core.management import call_command

    from tenants.provisioning.fleet import migrate_fleet

    out("== setting up a fresh benchmark database (migrate, template)")
    call_command("migrate", verbosity=0)
    create_tenants(0, 10, timed=False)
    if args.seed_only is not None:
        return 0
    out("== a second database with a fleet of 10, for the throughput comparison")
    seed_small_fleet(small_url, 10)
    os.environ["DATABASE_URL"] = large_url

    out(f"== creating {args.create} tenants by cloning the template")
    clone_seconds = create_tenants(10, 10 + args.create, timed=True)
    out(f"== creating {args.migrate_creates} tenants by running every migration")
    migrate_seconds = create_by_migrating(args.migrate_creates)

    out(f"== growing the fleet to {args.noop_fleet} tenants")
    create_tenants(10 + args.create, args.noop_fleet, timed=False)
    began = time.perf_counter()
    noop = migrate_fleet(parallel=2)
    noop_seconds = time.perf_counter() - began
    assert not noop.migrated and not noop.failed, noop

    out(f"== growing the fleet to {args.fleet} tenants")
    create_tenants(args.noop_fleet, args.fleet, timed=False)
    out(f"== creating {args.create_at_fleet} tenants at a fleet of {args.fleet}")
    at_fleet_seconds = create_tenants(
        args.fleet, args.fleet + args.create_at_fleet, timed=True
    )
    # one server connection per worker of each pool, as a web host's pgbouncer
    pooler = start_pgbouncer(
        [dj_database_url.parse(url) for url in (small_url, large_url)],
        port=free_port(),
        pool_size=2,
    )
    comparisons = {}
    try:
        for name, cached, through in (
            ("cached", True, pooler),
            ("uncached", False, pooler),
            ("uncached_direct", False, None),
        ):
            kind = (
                "cached home pages" if cached else "uncached pages, workers recycling"
            )
            path = "through pgbouncer" if through else "straight to PostgreSQL"
            out(
                f"== requests per second: 10 tenants against {args.fleet}, {kind}, "
                f"{path}, {args.rounds} interleaved rounds"
            )
            comparisons[name] = compare_fleets(
                small_url, args, cached=cached, pooler=through
            )
    finally:
        pooler.stop()
    small, large, ratio, _ = comparisons["cached"]
    small_u, large_u, ratio_u, recycled = comparisons["uncached"]
    small_d, large_d, ratio_d, recycled_d = comparisons["uncached_direct"]

    rows = (
        ("10 cached", small),
        (f"{args.fleet} cached", large),
        ("10 uncached", small_u),
        (f"{args.fleet} uncached", large_u),
        ("10 uncached direct", small_d),
        (f"{args.fleet} uncached direct", large_d),
    )
    for label, row in rows:
        run.check(row["non_200"] == 0, f"{label}: {row['non_200']} answers not 200")
        run.check(
            min(row["rps_rounds"]) > 0,
            f"{label}: a round served no page (rounds: "
            + ", ".join(f"{rps:.1f}" for rps in row["rps_rounds"])
            + " req/s)",
        )
    for label, count in (("", recycled), (" straight to PostgreSQL", recycled_d)):
        run.check(
            count >= 2,
            f"only {count} workers recycled while measuring uncached pages{label}: "
            "lower --max-requests",
        )
    figures = {
        "create_p50_s": statistics.median(clone_seconds),
        "create_p95_s": percentile(clone_seconds, 95),
        "create_seconds": clone_seconds,
        "create_at_fleet_p50_s": statistics.median(at_fleet_seconds),
        "create_at_fleet_p95_s": percentile(at_fleet_seconds, 95),
        "create_at_fleet_seconds": at_fleet_seconds,
        "migrate_create_p50_s": statistics.median(migrate_seconds),
        "noop_migrate_s": noop_seconds,
        "noop_migrate_tenants": noop.total,
        "rps_small": small,
        "rps_large": large,
        "rps_ratio": dict(zip(("median", "ci_low", "ci_high"), ratio, strict=True)),
        "rps_small_uncached": small_u,
        "rps_large_uncached": large_u,
        "rps_ratio_uncached": dict(
            zip(("median", "ci_low", "ci_high"), ratio_u, strict=True)
        ),
        "workers_recycled_uncached": recycled,
        "rps_small_uncached_direct": small_d,
        "rps_large_uncached_direct": large_d,
        "rps_ratio_uncached_direct": dict(
            zip(("median", "ci_low", "ci_high"), ratio_d, strict=True)
        ),
        "workers_recycled_uncached_direct": recycled_d,
    }
    RESULTS.mkdir(exist_ok=True)
    plot(clone_seconds, migrate_seconds, small, large)

    out()
    out(f"{'measure':<52}{'value':>12}")
    for label, value in (
        (f"creation by clone, p50 (s), fleet of 10-{10 + args.create}", "create_p50_s"),
        (f"creation by clone, p95 (s), fleet of 10-{10 + args.create}", "create_p95_s"),
        (
            f"tenant creation by clone, p50 (s), fleet of {args.fleet}",
            "create_at_fleet_p50_s",
        ),
        (
            f"tenant creation by clone, p95 (s), fleet of {args.fleet}",
            "create_at_fleet_p95_s",
        ),
        ("tenant creation by migrations, p50 (s)", "migrate_create_p50_s"),
    ):
        out(f"{label:<52}{figures[value]:>12.3f}")
    out(f"{f'no-op migrate over {noop.total} tenants (s)':<52}{noop_seconds:>12.2f}")
    for label, row in rows:
        out(
            f"{f'{label}: rps / p50 ms / p99 ms':<52}"
            f"{row['rps']:>8.0f} / {row['p50_ms']:.1f} / {row['p99_ms']:.1f}"
        )
        out(
            f"{f'{label}: worker RSS MB, non-200, recycled':<52}"
            f"{row['worker_rss_mb']:>8.0f} / {row['non_200']} / "
            f"{row['workers_recycled']}"
        )
        out(
            f"   {label} by round (rps/workers recycled): "
            + " ".join(
                f"{rps:.0f}/{booted}"
                for rps, booted in zip(
                    row["rps_rounds"], row["workers_recycled_rounds"], strict=True
                )
            )
        )
    for label, (value, low, high) in (
        ("cached", ratio),
        ("uncached", ratio_u),
        ("uncached straight to PostgreSQL", ratio_d),
    ):
        out(
            f"rps {args.fleet} / 10, {label}: {value:.3f} (95 % bootstrap interval "
            f"{low:.3f}-{high:.3f})"
        )
    return run.finish(
        {
            "create_p50_s": figures["create_p50_s"],
            "create_p95_s": figures["create_p95_s"],
            "migrate_create_p50_s": figures["migrate_create_p50_s"],
            "noop_migrate_500_s": round(noop_seconds, 2),
            "rps_ratio_1000_vs_10": ratio[0],
            "create_p50_s_at_1000": figures["create_at_fleet_p50_s"],
            "create_p95_s_at_1000": figures["create_at_fleet_p95_s"],
            "rps_ratio_1000_vs_10_uncached": ratio_u[0],
            "rps_ratio_1000_vs_10_uncached_ci_low": ratio_u[1],
            "rps_ratio_1000_vs_10_uncached_ci_high": ratio_u[2],
            "rps_ratio_1000_vs_10_uncached_direct": ratio_d[0],
            "rps_ratio_1000_vs_10_uncached_direct_ci_low": ratio_d[1],
            "rps_ratio_1000_vs_10_uncached_direct_ci_high": ratio_d[2],
        },
        figures,
    )


def plot(clone_seconds, migrate_seconds, small, large) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.hist(clone_seconds, bins=20, color="#3a7")
    left.axvline(statistics.median(migrate_seconds), color="#c33", linestyle="--")
    left.set_title("Tenant creation (s): clone histogram, migrations dashed")
    left.set_xlabel("seconds")
    right.bar(
        [f"{small['tenants']} tenants", f"{large['tenants']} tenants"],
        [small["rps"], large["rps"]],
        color=["#37a", "#37a"],
    )
    right.set_title("Requests per second, spread over every tenant")
    figure.tight_layout()
    figure.savefig(RESULTS / "provisioning.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
