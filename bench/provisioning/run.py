"""Provisioning benchmark: clone-based tenant creation, fleet migrations, and whether
request throughput holds as the number of tenants grows.

Runs in a database of its own (``<name>_bench``, dropped and re-created), so it never
touches the development data. Steps, all in one run:

1. 10 tenants, then gunicorn: requests per second spread over their hosts (baseline);
2. create tenants up to ``--create`` more by cloning (timed one by one), and a few by
   running every migration (the django-tenants default) for comparison;
3. grow the fleet to ``--noop-fleet`` tenants and time a no-op ``migrate`` over it;
4. grow to ``--fleet`` tenants, start gunicorn again: requests per second spread over
   every host, and worker memory.

The last line is ``RESULT create_p50_s=... create_p95_s=... migrate_create_p50_s=...
noop_migrate_500_s=... rps_ratio_1000_vs_10=...``.

Usage: make bench-provisioning  (options: python bench/provisioning/run.py --help)
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
from bench.common import RESULTS, gunicorn_env, out, percentile, use_bench_database

PORT = 18432


def create_tenants(start: int, stop: int, *, timed: bool) -> list[float]:
    from tenants.provisioning import tenant_create

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


def measure_rps(hosts: list[str], seconds: float, label: str) -> dict:
    """Start one gunicorn pool, warm every host, then measure."""
    import psutil

    from bench.loadgen import closed_loop, sweep
    from cms_project import devstack

    env = gunicorn_env(workers=2)
    log = Path(tempfile.gettempdir()) / f"bench-provisioning-{label}.log"
    process = devstack.start_gunicorn(PORT, env=env, log_path=log, workers=2)
    try:
        # every tenant's caches warm in both workers before measuring
        warm = sweep(PORT, hosts, repeat=3, threads=4)
        result = closed_loop(PORT, hosts, threads=4, seconds=seconds)
        workers = psutil.Process(process.pid).children()
        rss_mb = sum(w.memory_info().rss for w in workers) / 2**20
    finally:
        devstack.stop_process(process)
    ok = result.statuses.get(200, 0)
    return {
        "tenants": len(hosts),
        "rps": ok / result.seconds,
        "p50_ms": result.p50,
        "p99_ms": result.percentile(99),
        "non_200": result.requests - ok + result.errors,
        "worker_rss_mb": rss_mb,
        "warmup_rps": warm.rps,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--create", type=int, default=100)
    parser.add_argument("--migrate-creates", type=int, default=3)
    parser.add_argument("--noop-fleet", type=int, default=500)
    parser.add_argument("--fleet", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    if not (10 <= args.create + 10 <= args.noop_fleet <= args.fleet):
        parser.error("need 10 + --create <= --noop-fleet <= --fleet")

    use_bench_database("bench")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms_project.settings.dev")
    import django

    django.setup()
    from django.core.management import call_command

    from tenants.fleet import migrate_fleet

    out("== setting up a fresh benchmark database (migrate, template)")
    call_command("migrate", verbosity=0)

    create_tenants(0, 10, timed=False)
    hosts = [f"bench{i:04d}.localhost" for i in range(10)]
    out("== requests per second with 10 tenants")
    small = measure_rps(hosts, args.seconds, "10")

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
    out(f"== requests per second spread over all {args.fleet} tenants")
    hosts = [f"bench{i:04d}.localhost" for i in range(args.fleet)]
    large = measure_rps(hosts, args.seconds, str(args.fleet))

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
