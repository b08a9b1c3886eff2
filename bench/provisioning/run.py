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
   machine does falls on both sides alike; worker memory of each pool.

The last line is ``RESULT create_p50_s=... create_p95_s=... migrate_create_p50_s=...
noop_migrate_500_s=... rps_ratio_1000_vs_10=...``.

Usage: make bench-provisioning  (options: python bench/provisioning/run.py --help)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
from bench.common import RESULTS, gunicorn_env, out, percentile, use_bench_database

PORT = 18432


def create_tenants(start: int, stop: int, *, timed: bool) -> list[float]:
    from tenants.provisioning.creation import tenant_create

    seconds = []
    for index in range(start, stop):
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


def redis_url_with_db(url: str, db: int) -> str:
    """The same Redis server, another database number (a pool of its own)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":  # urlunsplit would drop the empty host's "//"
        return f"unix://{parts.path}?db={db}"
    return urlunsplit(parts._replace(path=f"/{db}"))


def seed_small_fleet(url: str, count: int) -> None:
    """Migrate a second database and give it ``count`` tenants, in a process of its
    own (this one's Django is bound to the large fleet's database)."""
    env = dict(os.environ, DATABASE_URL=url)
    subprocess.run(
        [sys.executable, __file__, "--seed-only", str(count)], env=env, check=True
    )


def start_pool(port: int, env: dict[str, str], label: str):
    from cms_project import devstack

    log = Path(tempfile.gettempdir()) / f"bench-provisioning-{label}.log"
    return devstack.start_gunicorn(port, env=env, log_path=log, workers=2)


def pool_rss_mb(process) -> float:
    import psutil

    workers = psutil.Process(process.pid).children()
    return sum(worker.memory_info().rss for worker in workers) / 2**20


def compare_rps(
    small_url: str,
    small_hosts: list[str],
    hosts: list[str],
    *,
    seconds: float,
    rounds: int,
) -> tuple[dict, dict]:
    """Both pools up at once; warm every host of each, then alternate rounds."""
    from bench.loadgen import closed_loop, sweep
    from cms_project import devstack

    large_env = gunicorn_env(workers=2)
    small_env = dict(
        gunicorn_env(workers=2),
        DATABASE_URL=small_url,
        REDIS_URL=redis_url_with_db(os.environ["REDIS_URL"], 2),
    )
    pools = {
        "small": (start_pool(PORT, small_env, "small"), small_hosts),
        "large": (start_pool(PORT + 1, large_env, "large"), hosts),
    }
    ports = {"small": PORT, "large": PORT + 1}
    rows: dict[str, dict] = {}
    try:
        for name, (_, pool_hosts) in pools.items():
            # every tenant's caches warm in both workers before measuring
            sweep(ports[name], pool_hosts, repeat=3, threads=4)
        blocks: dict[str, list] = {name: [] for name in pools}
        for _ in range(rounds):
            for name, (_, pool_hosts) in pools.items():
                blocks[name].append(
                    closed_loop(
                        ports[name], pool_hosts, threads=4, seconds=seconds / rounds
                    )
                )
        for name, (process, pool_hosts) in pools.items():
            results = blocks[name]
            latencies = [ms for block in results for ms in block.latencies_ms]
            ok = [block.statuses.get(200, 0) / block.seconds for block in results]
            non_200 = sum(
                block.requests - block.statuses.get(200, 0) + block.errors
                for block in results
            )
            rows[name] = {
                "tenants": len(pool_hosts),
                "rps": statistics.median(ok),
                "rps_rounds": ok,
                "p50_ms": statistics.median(latencies),
                "p99_ms": percentile(latencies, 99),
                "non_200": non_200,
                "worker_rss_mb": pool_rss_mb(process),
            }
    finally:
        for process, _ in pools.values():
            devstack.stop_process(process)
    return rows["small"], rows["large"]


def compare_fleets(small_url: str, args) -> tuple[dict, dict]:
    """The fleet of 10 in ``small_url`` against ``--fleet`` tenants in DATABASE_URL."""
    return compare_rps(
        small_url,
        [f"bench{i:04d}.localhost" for i in range(10)],
        [f"bench{i:04d}.localhost" for i in range(args.fleet)],
        seconds=args.seconds,
        rounds=args.rounds,
    )


def compare_only(args) -> int:
    configured = urlsplit(os.environ["DATABASE_URL"])
    name = configured.path.lstrip("/")
    small_url = urlunsplit(configured._replace(path=f"/{name}_bench_small"))
    os.environ["DATABASE_URL"] = urlunsplit(configured._replace(path=f"/{name}_bench"))
    previous = json.loads((RESULTS / "provisioning.json").read_text())
    out(
        f"== requests per second: 10 tenants against all {args.fleet} (existing fleets)"
    )
    small, large = compare_fleets(small_url, args)
    ratio = large["rps"] / small["rps"]
    for label, row in (("10", small), (str(args.fleet), large)):
        out(
            f"{f'{label} tenants: rps / p50 ms / p99 ms':<44}"
            f"{row['rps']:>8.0f} / {row['p50_ms']:.1f} / {row['p99_ms']:.1f}"
        )
    out("(creation and migrate figures below are the last full run's)")
    out(
        f"RESULT create_p50_s={previous['create_p50_s']:.3f} "
        f"create_p95_s={previous['create_p95_s']:.3f} "
        f"migrate_create_p50_s={previous['migrate_create_p50_s']:.3f} "
        f"noop_migrate_500_s={previous['noop_migrate_s']:.2f} "
        f"rps_ratio_1000_vs_10={ratio:.3f}"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--create", type=int, default=100)
    parser.add_argument("--migrate-creates", type=int, default=3)
    parser.add_argument("--noop-fleet", type=int, default=500)
    parser.add_argument("--fleet", type=int, default=1000)
    parser.add_argument(
        "--seconds", type=float, default=40, help="measured seconds per fleet"
    )
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seed-only", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--rps-only",
        action="store_true",
        help="measure only the throughput comparison, on the fleets the last full run "
        "left; creation figures are taken from that run's JSON",
    )
    args = parser.parse_args()
    if args.rps_only:
        return compare_only(args)
    if not (10 <= args.create + 10 <= args.noop_fleet <= args.fleet):
        parser.error("need 10 + --create <= --noop-fleet <= --fleet")

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
    out(
        f"== requests per second: 10 tenants against all {args.fleet}, "
        f"{args.rounds} alternating rounds"
    )
    small, large = compare_fleets(small_url, args)

    figures = {
        "create_p50_s": statistics.median(clone_seconds),
        "create_p95_s": percentile(clone_seconds, 95),
        "migrate_create_p50_s": statistics.median(migrate_seconds),
        "noop_migrate_s": noop_seconds,
        "noop_migrate_tenants": noop.total,
        "rps_small": small,
        "rps_large": large,
        "rps_ratio": large["rps"] / small["rps"],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "provisioning.json").write_text(json.dumps(figures, indent=2))
    plot(clone_seconds, migrate_seconds, small, large)

    out()
    out(f"{'measure':<44}{'value':>12}")
    out(f"{'tenant creation by clone, p50 (s)':<44}{figures['create_p50_s']:>12.3f}")
    out(f"{'tenant creation by clone, p95 (s)':<44}{figures['create_p95_s']:>12.3f}")
    out(
        f"{'tenant creation by migrations, p50 (s)':<44}"
        f"{figures['migrate_create_p50_s']:>12.3f}"
    )
    out(f"{f'no-op migrate over {noop.total} tenants (s)':<44}{noop_seconds:>12.2f}")
    for label, row in (("10", small), (str(args.fleet), large)):
        out(
            f"{f'{label} tenants: rps / p50 ms / p99 ms':<44}"
            f"{row['rps']:>8.0f} / {row['p50_ms']:.1f} / {row['p99_ms']:.1f}"
        )
        out(
            f"{f'{label} tenants: worker RSS MB, non-200':<44}"
            f"{row['worker_rss_mb']:>8.0f} / {row['non_200']}"
        )
    out(
        f"RESULT create_p50_s={figures['create_p50_s']:.3f} "
        f"create_p95_s={figures['create_p95_s']:.3f} "
        f"migrate_create_p50_s={figures['migrate_create_p50_s']:.3f} "
        f"noop_migrate_500_s={noop_seconds:.2f} "
        f"rps_ratio_1000_vs_10={figures['rps_ratio']:.3f}"
    )
    return 0


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
