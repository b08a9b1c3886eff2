"""Shared versus isolated compute: one gunicorn pool for every tenant, or a small pool
per tenant, with the same total number of worker processes.

Runs in a database of its own (``<name>_bench_shared``, dropped and re-created) with
``--tenants`` tenants (8 by default) on a plan whose limits no load here reaches: the
question is what pooling does, not what the tariffs do. Both set-ups run the same
product code and settings; they differ only in how workers are grouped:

(1) shared: one pool of ``N x --workers-per-tenant`` workers serving every tenant;
(2) isolated: one pool of ``--workers-per-tenant`` workers per tenant, each tenant's
    traffic sent to its own pool only.

Load is open loop (bench/loadgen.py): each tenant sends requests at a fixed rate and a
request's latency counts from the moment it was due, so queueing shows. Phase
``steady``: every tenant at rate r; phase ``spike``: tenant 0 at 10 r, the others at r.
r is derived from the shared pool's capacity measured first (closed loop, all tenants),
so that the spike phase offers ``--load`` of it (0.6 by default): a machine-independent
load, the same for both set-ups. Pages render uncached (``CMS_PAGE_CACHE_SECONDS=0``)
unless ``--page-cache``: compute is what is being pooled.

Memory: RSS and PSS of every gunicorn process of each set-up, measured after its spike
phase. The memory for 50 tenants is extrapolated from these measurements (not run):
isolated needs 50 pools; shared needs one pool whose workers grow by the measured
per-tenant RSS (workers of the shared pool served every tenant, isolated ones one).

The last line is ``RESULT spike_p99_ratio_shared_vs_isolated=X
quiet_p99_ratio_shared_vs_isolated=X memory_ratio_shared_vs_isolated=X errors_shared=N``
(ratios below 1 favour the shared pool).

Usage: flock /tmp/bench.lock make bench-shared_vs_isolated
       (options: python bench/shared_vs_isolated/run.py --help)
"""

import argparse
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
from bench.common import (
    RESULTS,
    create_unlimited_plan,
    gunicorn_env,
    out,
    percentile,
    use_bench_database,
)

SHARED_PORT = 18460
ISOLATED_BASE_PORT = 18461
SPIKE_FACTOR = 10
EXTRAPOLATE_TO = 50


@dataclass
class TenantFigures:
    host: str
    rate: float
    requests: int
    ok: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float


@dataclass
class Memory:
    processes: int
    rss_mb: float
    pss_mb: float
    master_rss_mb: float
    worker_rss_mb: float  # mean per worker


def hosts_of(count: int) -> list[str]:
    return [f"sv{index:02d}.localhost" for index in range(count)]


def prepare(count: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django_tenants.utils import schema_context
    from wagtail.models import Site

    from bench.overhead.article import add_benchmark_article
    from tenants.provisioning.creation import tenant_create

    call_command("migrate", verbosity=0)
    plan = create_unlimited_plan()
    for host in hosts_of(count):
        slug = host.split(".")[0]
        tenant_create(
            slug=slug,
            name=slug.upper(),
            domains=[host],
            plan=plan,
            admin_password="bench-password-1",
        )
        with schema_context(slug):
            home = Site.objects.get(is_default_site=True).root_page.specific
            add_benchmark_article(home)


def memory_of(processes) -> Memory:
    """RSS double counts pages shared with the master after fork; PSS splits them."""
    import psutil

    masters = [psutil.Process(p.pid) for p in processes]
    workers = [child for master in masters for child in master.children()]
    everything = masters + workers

    def mb(value: int) -> float:
        return value / 2**20

    return Memory(
        processes=len(everything),
        rss_mb=mb(sum(p.memory_info().rss for p in everything)),
        pss_mb=mb(sum(p.memory_full_info().pss for p in everything)),
        master_rss_mb=mb(sum(p.memory_info().rss for p in masters)) / len(masters),
        worker_rss_mb=mb(sum(p.memory_info().rss for p in workers)) / len(workers),
    )


def figures_of(result) -> TenantFigures:
    ok = result.latencies_of(200)
    return TenantFigures(
        host=result.schedule.host,
        rate=result.schedule.rate,
        requests=result.requests,
        ok=len(ok),
        errors=result.requests - len(ok),
        rps=len(ok) / result.seconds,
        p50_ms=percentile(ok, 50),
        p99_ms=percentile(ok, 99),
    )


def run_phases(
    ports: list[int], hosts: list[str], rate: float, seconds: float, path: str
) -> dict[str, list[TenantFigures]]:
    from bench.loadgen import Schedule, closed_loop, open_loop

    for port, host in zip(ports, hosts, strict=True):
        # warm the tenant's caches in every worker that will serve it
        closed_loop(port, [host], path=path, threads=2, seconds=1)
    phases = {}
    for phase, spike in (("steady", 1), ("spike", SPIKE_FACTOR)):
        schedules = [
            Schedule(
                host=host,
                rate=rate * (spike if index == 0 else 1),
                path=path,
                connections=64 if index == 0 else 16,
                port=port,
            )
            for index, (port, host) in enumerate(zip(ports, hosts, strict=True))
        ]
        results = open_loop(ports[0], schedules, seconds=seconds)
        phases[phase] = [figures_of(result) for result in results]
    return phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=8)
    parser.add_argument("--workers-per-tenant", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20, help="per phase")
    parser.add_argument(
        "--load",
        type=float,
        default=0.6,
        help="spike-phase load as a fraction of the shared pool's measured capacity",
    )
    parser.add_argument(
        "--quiet-target-ms",
        type=float,
        default=250,
        help="p99 a quiet tenant must stay under during the spike",
    )
    parser.add_argument(
        "--rate",
        type=float,
        help="requests per second per tenant (default: derived from --load)",
    )
    parser.add_argument("--page-cache", action="store_true")
    args = parser.parse_args()
    if not 8 <= args.tenants <= 16:
        parser.error("--tenants must be 8-16 (every one gets a pool when isolated)")
    if not 1 <= args.workers_per_tenant <= 2:
        parser.error("--workers-per-tenant must be 1 or 2 (2 cores: keep it sane)")
    if not 5 <= args.seconds <= 60 or not 0.05 <= args.load <= 1.5:
        parser.error("--seconds must be 5-60 and --load 0.05-1.5")

    use_bench_database("bench_shared")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms_project.settings.dev")
    from bench.loadgen import closed_loop
    from cms_project import devstack

    hosts = hosts_of(args.tenants)
    out(f"== preparing {args.tenants} tenants on an unlimited plan")
    prepare(args.tenants)
    from bench.overhead.article import ARTICLE_PATH

    total_workers = args.tenants * args.workers_per_tenant

    def env(workers: int) -> dict[str, str]:
        settings = gunicorn_env(workers=workers) | {"LOG_LEVEL": "WARNING"}
        settings["CMS_PAGE_CACHE_SECONDS"] = "300" if args.page_cache else "0"
        settings["GUNICORN_WORKER_CLASS"] = "sync"
        return settings

    def log(name: str) -> Path:
        return Path(tempfile.gettempdir()) / f"bench-shared-{name}.log"

    out(f"== (1) shared: one pool of {total_workers} workers")
    shared_pool = devstack.start_gunicorn(
        SHARED_PORT,
        env=env(total_workers),
        log_path=log("shared"),
        workers=total_workers,
    )
    try:
        if args.rate:
            capacity_rps = float("nan")
            rate = args.rate
        else:
            closed_loop(SHARED_PORT, hosts, path=ARTICLE_PATH, threads=8, seconds=3)
            capacity = closed_loop(
                SHARED_PORT,
                hosts,
                path=ARTICLE_PATH,
                threads=2 * total_workers,
                seconds=5,
            )
            capacity_rps = capacity.statuses.get(200, 0) / capacity.seconds
            rate = args.load * capacity_rps / (args.tenants - 1 + SPIKE_FACTOR)
        out(
            f"   capacity {capacity_rps:.0f} req/s -> r = {rate:.1f} req/s per tenant, "
            f"spike {rate * SPIKE_FACTOR:.0f} req/s"
        )
        shared = run_phases(
            [SHARED_PORT] * args.tenants, hosts, rate, args.seconds, ARTICLE_PATH
        )
        shared_memory = memory_of([shared_pool])
    finally:
        devstack.stop_process(shared_pool)

    out(f"== (2) isolated: {args.tenants} pools of {args.workers_per_tenant} worker(s)")
    ports = [ISOLATED_BASE_PORT + index for index in range(args.tenants)]
    pools = []
    try:
        for index, port in enumerate(ports):
            pools.append(
                devstack.start_gunicorn(
                    port,
                    env=env(args.workers_per_tenant),
                    log_path=log(f"isolated{index}"),
                    workers=args.workers_per_tenant,
                )
            )
        isolated = run_phases(ports, hosts, rate, args.seconds, ARTICLE_PATH)
        isolated_memory = memory_of(pools)
    finally:
        for pool in pools:
            devstack.stop_process(pool)

    report(args, capacity_rps, rate, shared, isolated, shared_memory, isolated_memory)
    return 0


def extrapolate(shared: Memory, isolated: Memory, tenants: int, workers: int) -> dict:
    """Memory for ``EXTRAPOLATE_TO`` tenants, from the measured processes."""
    per_tenant_growth = max(
        0.0, (shared.worker_rss_mb - isolated.worker_rss_mb) / (tenants - 1)
    )
    isolated_total = EXTRAPOLATE_TO * (
        isolated.master_rss_mb + workers * isolated.worker_rss_mb
    )
    shared_workers = tenants * workers
    shared_total = shared.master_rss_mb + shared_workers * (
        isolated.worker_rss_mb + EXTRAPOLATE_TO * per_tenant_growth
    )
    return {
        "tenants": EXTRAPOLATE_TO,
        "per_tenant_worker_growth_mb": per_tenant_growth,
        "isolated_mb": isolated_total,
        "shared_mb": shared_total,
        "shared_workers": shared_workers,
    }


def report(args, capacity_rps, rate, shared, isolated, shared_memory, isolated_memory):
    fifty = extrapolate(
        shared_memory, isolated_memory, args.tenants, args.workers_per_tenant
    )

    def quiet_worst_p99(phase: list[TenantFigures]) -> float:
        return max(f.p99_ms for f in phase[1:])

    spike_ratio = shared["spike"][0].p99_ms / isolated["spike"][0].p99_ms
    quiet_ratio = quiet_worst_p99(shared["spike"]) / quiet_worst_p99(isolated["spike"])
    memory_ratio = shared_memory.rss_mb / isolated_memory.rss_mb
    errors_shared = sum(f.errors for phase in shared.values() for f in phase)
    errors_isolated = sum(f.errors for phase in isolated.values() for f in phase)

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "shared_vs_isolated.json").write_text(
        json.dumps(
            {
                "tenants": args.tenants,
                "workers_total": args.tenants * args.workers_per_tenant,
                "capacity_rps": capacity_rps,
                "rate_per_tenant": rate,
                "page_cache": args.page_cache,
                "shared": {k: [asdict(f) for f in v] for k, v in shared.items()},
                "isolated": {k: [asdict(f) for f in v] for k, v in isolated.items()},
                "memory": {
                    "shared": asdict(shared_memory),
                    "isolated": asdict(isolated_memory),
                    "extrapolated": fifty,
                },
            },
            indent=2,
        )
    )
    plot(shared, isolated, shared_memory, isolated_memory, fifty)

    out()
    out(
        f"{args.tenants} tenants, {args.tenants * args.workers_per_tenant} workers "
        f"either way; r = {rate:.1f} req/s per tenant, tenant 0 spikes to "
        f"{rate * SPIKE_FACTOR:.0f} req/s; pages "
        f"{'cached' if args.page_cache else 'uncached'}; {args.seconds:.0f} s per phase"
    )
    out(
        f"{'set-up':<10}{'phase':<8}{'tenant':<16}{'offered':>8}{'req/s':>8}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
    )
    for name, phases in (("shared", shared), ("isolated", isolated)):
        for phase, rows in phases.items():
            for index, f in enumerate(rows):
                label = f.host.split(".")[0] + (" (spike)" if index == 0 else "")
                out(
                    f"{name:<10}{phase:<8}{label:<16}{f.rate:>8.1f}{f.rps:>8.1f}"
                    f"{f.p50_ms:>9.1f}{f.p99_ms:>9.1f}{f.errors:>8}"
                )
            total = sum(f.rps for f in rows)
            out(f"{name:<10}{phase:<8}{'all tenants':<16}{'':>8}{total:>8.1f}")
    out()
    out(f"{'memory':<30}{'processes':>10}{'RSS MB':>10}{'PSS MB':>10}")
    for name, memory in (("shared", shared_memory), ("isolated", isolated_memory)):
        out(
            f"{name:<30}{memory.processes:>10}{memory.rss_mb:>10.0f}"
            f"{memory.pss_mb:>10.0f}"
        )
    out(
        f"{EXTRAPOLATE_TO} tenants (extrapolated): isolated {fifty['isolated_mb']:.0f} "
        f"MB ({EXTRAPOLATE_TO} pools), shared {fifty['shared_mb']:.0f} MB (one pool of "
        f"{fifty['shared_workers']} workers, "
        f"+{fifty['per_tenant_worker_growth_mb']:.2f} MB per tenant per worker)"
    )
    quiet_ok = quiet_worst_p99(shared["spike"]) <= args.quiet_target_ms
    out(
        f"goal: spiking tenant's p99 lower when shared: "
        f"{'met' if spike_ratio < 1 else 'NOT met'} ({spike_ratio:.3f}); "
        f"no errors shared: {'met' if errors_shared == 0 else 'NOT met'}; quiet "
        f"tenants' p99 under {args.quiet_target_ms:.0f} ms when shared: "
        f"{'met' if quiet_ok else 'NOT met'}; errors isolated: {errors_isolated}"
    )
    out(
        f"RESULT spike_p99_ratio_shared_vs_isolated={spike_ratio:.3f} "
        f"quiet_p99_ratio_shared_vs_isolated={quiet_ratio:.3f} "
        f"memory_ratio_shared_vs_isolated={memory_ratio:.3f} "
        f"errors_shared={errors_shared}"
    )


def plot(shared, isolated, shared_memory, isolated_memory, fifty) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.3))
    labels = []
    values_shared = []
    values_isolated = []
    for phase in ("steady", "spike"):
        labels += [f"{phase}\nspiking", f"{phase}\nquiet (worst)"]
        for source, values in ((shared, values_shared), (isolated, values_isolated)):
            rows = source[phase]
            values += [rows[0].p99_ms, max(f.p99_ms for f in rows[1:])]
    positions = range(len(labels))
    left.bar([p - 0.2 for p in positions], values_shared, 0.4, label="shared pool")
    left.bar(
        [p + 0.2 for p in positions], values_isolated, 0.4, label="pool per tenant"
    )
    left.set_xticks(list(positions), labels, fontsize=8)
    left.set_yscale("log")
    left.set_ylabel("p99 latency, ms (log)")
    left.set_title("Tenant latency, steady and with tenant 0 at 10x")
    left.legend(fontsize=8)
    right.bar(
        [
            "shared\nmeasured",
            "isolated\nmeasured",
            "shared\n50 tenants*",
            "isolated\n50 tenants*",
        ],
        [
            shared_memory.rss_mb,
            isolated_memory.rss_mb,
            fifty["shared_mb"],
            fifty["isolated_mb"],
        ],
        color=["#37a", "#c73", "#37a", "#c73"],
    )
    right.set_ylabel("RSS, MB")
    right.set_title("Memory (* extrapolated from measured processes)")
    figure.tight_layout()
    figure.savefig(RESULTS / "shared_vs_isolated.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
