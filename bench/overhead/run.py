"""Tenant overhead benchmark: what the tenant layer costs on one article page.

Four servers under the same gunicorn settings, measured in the same run, rounds
interleaved so that a neighbour's load on the machine hits all of them alike:

(a) ``ceiling``: a plain Django view returning a short text (no middleware or database);
(b) ``vanilla``: a single-tenant Wagtail site with the same page models, no
    django-tenants (``bench/overhead/vanilla_settings.py``, a database of its own);
(c) ``uncached``: this product, page cache off (``CMS_PAGE_CACHE_SECONDS=0``);
(d) ``cached``: this product with its per-tenant page cache.

(b)-(d) serve the same article (``bench/overhead/article.py``). The tenant is on a plan
with limits far above the load, so rate limits are counted but never refuse.

Load comes from wrk (Debian's package, installed here when missing and apt-get works),
else from ``bench/loadgen.py``; loopback only, each measurement a fixed number of
seconds. ``--sweep`` also measures the product under several gunicorn configurations
(worker class, workers, threads) to choose the defaults of
``cms_project/gunicorn.conf.py``.

The last line is ``RESULT uncached_vs_vanilla=X cached_vs_ceiling=X ceiling_rps=X``.

Usage: flock /tmp/bench.lock make bench-overhead
       (options: python bench/overhead/run.py --help)
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    RESULTS,
    create_unlimited_plan,
    gunicorn_env,
    out,
    use_bench_database,
)

BASE_PORT = 18440
HOST = "bench.localhost"
SETUPS = {
    "ceiling": "(a) plain Django view",
    "vanilla": "(b) vanilla Wagtail",
    "uncached": "(c) product, uncached",
    "cached": "(d) product, page cache",
}
GOAL_UNCACHED_VS_VANILLA = 0.95
GOAL_CACHED_VS_CEILING = 0.5


@dataclass(frozen=True)
class PoolConfig:
    worker_class: str
    workers: int
    threads: int = 1

    @property
    def label(self) -> str:
        if self.worker_class == "gthread":
            return f"gthread {self.workers}x{self.threads}"
        return f"{self.worker_class} {self.workers}"

    def env(self) -> dict[str, str]:
        return {
            "GUNICORN_WORKER_CLASS": self.worker_class,
            "GUNICORN_WORKERS": str(self.workers),
            "GUNICORN_THREADS": str(self.threads),
        }


@dataclass
class Measure:
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int


def parse_config(text: str) -> PoolConfig:
    """``sync:4`` or ``gthread:2x4``."""
    try:
        kind, _, size = text.partition(":")
        if kind == "gthread":
            workers, _, threads = size.partition("x")
            return PoolConfig("gthread", int(workers), int(threads or 1))
        if kind == "sync":
            return PoolConfig("sync", int(size))
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(
        f"invalid pool {text!r}: use sync:WORKERS or gthread:WORKERSxTHREADS"
    )


# --- preparing the sites ------------------------------------------------------------


def prepare_vanilla() -> None:
    """Runs in a child process under the vanilla settings: migrate with Django's own
    command (the project's ``migrate`` is tenant-aware), then a home and the article."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.core.management.commands.migrate import Command as Migrate
    from wagtail.models import Page, Site

    from bench.overhead.article import add_benchmark_article
    from content.models import HomePage

    call_command(Migrate(), verbosity=0, interactive=False)
    home = HomePage(title="Vanilla site", slug="vanilla-home")
    Page.objects.get(depth=1).add_child(instance=home)
    home.save_revision().publish()
    site = Site.objects.get(is_default_site=True)
    site.root_page = home
    site.site_name = "Bench"  # the product tenant's name: the very same bytes
    site.save()
    add_benchmark_article(home)


def prepare_product() -> None:
    """Migrate a fresh database, a plan no benchmark load can reach, one tenant."""
    import django

    django.setup()
    from django.core.management import call_command
    from django_tenants.utils import schema_context
    from wagtail.models import Site

    from bench.overhead.article import add_benchmark_article
    from tenants.provisioning.creation import tenant_create

    call_command("migrate", verbosity=0)
    plan = create_unlimited_plan()
    tenant_create(
        slug="bench",
        name="Bench",
        domains=[HOST],
        plan=plan,
        admin_password="bench-password-1",
    )
    with schema_context("bench"):
        add_benchmark_article(Site.objects.get(is_default_site=True).root_page.specific)


# --- servers and load ---------------------------------------------------------------


def server_env(setup: str, config: PoolConfig, urls: dict[str, str]) -> dict[str, str]:
    env = gunicorn_env(workers=config.workers) | config.env()
    if setup == "ceiling":
        env["DJANGO_SETTINGS_MODULE"] = "bench.overhead.plain_settings"
    elif setup == "vanilla":
        env["DJANGO_SETTINGS_MODULE"] = "bench.overhead.vanilla_settings"
        env["DATABASE_URL"] = urls["vanilla"]
    else:
        env["DATABASE_URL"] = urls["product"]
        env["CMS_PAGE_CACHE_SECONDS"] = "0" if setup == "uncached" else "300"
    # One log line per request would be part of what is measured in every set-up.
    env["LOG_LEVEL"] = "WARNING"
    return env


def ensure_wrk() -> str | None:
    """wrk from Debian's package; None (use the Python load generator) without it."""
    if path := shutil.which("wrk"):
        return path
    if shutil.which("apt-get") is None:
        return None
    out("== installing wrk (apt-get install -y wrk)")
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True)
        subprocess.run(install, capture_output=True)
    return shutil.which("wrk")


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk_ms(text: str, label: str) -> float:
    match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    return float(match.group(1)) * _UNITS_MS[match.group(2)] if match else float("nan")


def run_wrk(wrk: str, port: int, path: str, *, connections: int, seconds: float):
    command = [
        wrk,
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{seconds:.0f}s",
        "--latency",
        "--timeout",
        "10s",
        "-H",
        f"Host: {HOST}",
        f"http://127.0.0.1:{port}{path}",
    ]
    text = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return Measure(
        rps=rps,
        p50_ms=_wrk_ms(text, "50%"),
        p99_ms=_wrk_ms(text, "99%"),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        # a sync worker closes each connection: wrk counts those closes as read errors
        errors=sum(int(socket.group(n)) for n in (1, 3, 4)) if socket else 0,
    )


def run_python(port: int, path: str, *, connections: int, seconds: float) -> Measure:
    from bench.loadgen import closed_loop

    result = closed_loop(port, [HOST], path=path, threads=connections, seconds=seconds)
    ok = result.statuses.get(200, 0)
    return Measure(
        rps=result.rps,
        p50_ms=result.p50,
        p99_ms=result.percentile(99),
        non_2xx=result.requests - ok,
        errors=result.errors,
    )


def path_of(setup: str) -> str:
    from bench.overhead.article import ARTICLE_PATH

    return ARTICLE_PATH


def measure_pools(
    setups: list[str],
    config: PoolConfig,
    urls: dict[str, str],
    *,
    wrk: str | None,
    rounds: int,
    seconds: float,
    connections: int,
) -> dict[str, Measure]:
    """Start one pool per set-up, then measure them round-robin, ``rounds`` times;
    each set-up's figure is its median round (by requests per second)."""
    from cms_project import devstack

    def load(port: int, setup: str, duration: float) -> Measure:
        if wrk:
            return run_wrk(
                wrk, port, path_of(setup), connections=connections, seconds=duration
            )
        return run_python(
            port, path_of(setup), connections=connections, seconds=duration
        )

    processes = {}
    try:
        for index, setup in enumerate(setups):
            log = Path(tempfile.gettempdir()) / f"bench-overhead-{setup}.log"
            processes[setup] = devstack.start_gunicorn(
                BASE_PORT + index,
                env=server_env(setup, config, urls),
                log_path=log,
                workers=config.workers,
            )
        for index, setup in enumerate(setups):
            load(BASE_PORT + index, setup, 2)  # warm every worker's caches
        rounds_of: dict[str, list[Measure]] = {setup: [] for setup in setups}
        for _ in range(rounds):
            for index, setup in enumerate(setups):
                rounds_of[setup].append(load(BASE_PORT + index, setup, seconds))
    finally:
        for process in processes.values():
            devstack.stop_process(process)
    return {
        setup: sorted(measures, key=lambda m: m.rps)[len(measures) // 2]
        for setup, measures in rounds_of.items()
    }


# --- report -------------------------------------------------------------------------


def print_table(title: str, rows: dict[str, Measure], names: dict[str, str]) -> None:
    out()
    out(title)
    out(f"{'set-up':<28}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    for key, m in rows.items():
        out(
            f"{names.get(key, key):<28}{m.rps:>10.0f}{m.p50_ms:>9.2f}"
            f"{m.p99_ms:>9.2f}{m.non_2xx:>9}"
        )


def plot(main: dict[str, Measure], config: PoolConfig, sweep: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 2 if sweep else 1
    figure, axes = plt.subplots(1, columns, figsize=(6 * columns, 4.2), squeeze=False)
    left = axes[0][0]
    labels = [SETUPS[key].split(" ", 1)[1] for key in main]
    left.bar(labels, [m.rps for m in main.values()], color="#37a")
    left.axhline(
        main["vanilla"].rps * GOAL_UNCACHED_VS_VANILLA,
        color="#c33",
        linestyle="--",
        label="goal for (c): 0.95 x (b)",
    )
    left.axhline(
        main["ceiling"].rps * GOAL_CACHED_VS_CEILING,
        color="#3a7",
        linestyle=":",
        label="goal for (d): 0.5 x (a)",
    )
    left.set_ylabel("requests per second")
    left.set_title(f"One article page, gunicorn {config.label}")
    left.tick_params(axis="x", labelsize=8)
    left.legend(fontsize=8)
    if sweep:
        right = axes[0][1]
        names = list(sweep)
        width = 0.4
        positions = range(len(names))
        right.bar(
            [p - width / 2 for p in positions],
            [sweep[n]["uncached"].rps for n in names],
            width,
            label="uncached",
            color="#37a",
        )
        right.bar(
            [p + width / 2 for p in positions],
            [sweep[n]["cached"].rps for n in names],
            width,
            label="page cache",
            color="#3a7",
        )
        right.set_xticks(list(positions), names, rotation=30, fontsize=8)
        right.set_title("Product by gunicorn configuration")
        right.set_ylabel("requests per second")
        right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(RESULTS / "overhead.png", dpi=110)


def default_config() -> PoolConfig:
    """The pool cms_project/gunicorn.conf.py starts without environment overrides."""
    config_path = REPO / "cms_project" / "gunicorn.conf.py"
    namespace: dict = {"__file__": str(config_path)}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GUNICORN_")}
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(clean)
    try:
        exec(config_path.read_text(), namespace)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return PoolConfig(
        namespace.get("worker_class", "sync"),
        int(namespace["workers"]),
        int(namespace.get("threads", 1)),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--pool",
        type=parse_config,
        help="gunicorn pool of the main comparison (default: the sweep's best for "
        "uncached pages, else gunicorn.conf.py's), e.g. sync:4 or gthread:2x4",
    )
    parser.add_argument(
        "--sweep",
        nargs="*",
        type=parse_config,
        metavar="POOL",
        help="also measure (c) and (d) under these pools (no value: a standard set)",
    )
    parser.add_argument(
        "--python-loadgen", action="store_true", help="do not use wrk even if present"
    )
    parser.add_argument(
        "--prepare-vanilla", action="store_true", help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.prepare_vanilla:
        prepare_vanilla()
        return 0
    if args.seconds < 1 or args.seconds > 60 or not 1 <= args.rounds <= 10:
        parser.error("--seconds must be 1-60 and --rounds 1-10")
    if not 1 <= args.connections <= 256:
        parser.error("--connections must be 1-256")

    config = args.pool or default_config()
    sweep_configs = args.sweep
    if sweep_configs == []:
        sweep_configs = [PoolConfig("sync", n) for n in (2, 3, 4, 5)] + [
            PoolConfig("gthread", 2, 4),
            PoolConfig("gthread", 3, 2),
            PoolConfig("gthread", 4, 2),
        ]
    wrk = None if args.python_loadgen else ensure_wrk()
    out(f"== load generator: {'wrk' if wrk else 'bench/loadgen.py (Python)'}")
    out(f"== machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms_project.settings.dev")
    configured_url = os.environ["DATABASE_URL"]
    urls = {"vanilla": use_bench_database("bench_overhead_vanilla")}
    out("== preparing (b): vanilla Wagtail database")
    subprocess.run(
        [sys.executable, __file__, "--prepare-vanilla"],
        env=gunicorn_env(workers=1)
        | {
            "DJANGO_SETTINGS_MODULE": "bench.overhead.vanilla_settings",
            "DATABASE_URL": urls["vanilla"],
            "PYTHONPATH": str(REPO),
            "LOG_LEVEL": "WARNING",
        },
        check=True,
    )
    os.environ["DATABASE_URL"] = configured_url
    urls["product"] = use_bench_database("bench_overhead")
    out("== preparing (c)/(d): product database, one tenant on an unlimited plan")
    prepare_product()

    sweep: dict[str, dict[str, Measure]] = {}
    pools = {pool.label: pool for pool in sweep_configs or []}
    for pool in pools.values():
        out(f"== sweep: gunicorn {pool.label}")
        sweep[pool.label] = measure_pools(
            ["uncached", "cached"],
            pool,
            urls,
            wrk=wrk,
            rounds=1,
            seconds=args.seconds,
            connections=args.connections,
        )
    if sweep and args.pool is None:
        # Rendering pages is what a pool spends its CPU on: pick by uncached pages.
        config = pools[max(sweep, key=lambda label: sweep[label]["uncached"].rps)]

    out(f"== measuring (a)-(d), gunicorn {config.label}, {args.rounds} rounds")
    main_rows = measure_pools(
        list(SETUPS),
        config,
        urls,
        wrk=wrk,
        rounds=args.rounds,
        seconds=args.seconds,
        connections=args.connections,
    )

    RESULTS.mkdir(exist_ok=True)
    figures = {
        "pool": config.label,
        "load_generator": "wrk" if wrk else "python",
        "connections": args.connections,
        "main": {key: asdict(m) for key, m in main_rows.items()},
        "sweep": {
            label: {key: asdict(m) for key, m in rows.items()}
            for label, rows in sweep.items()
        },
    }
    (RESULTS / "overhead.json").write_text(json.dumps(figures, indent=2))
    plot(main_rows, config, sweep)

    print_table(
        f"Same article page, gunicorn {config.label}, {args.connections} connections, "
        f"median of {args.rounds} rounds of {args.seconds:.0f} s",
        main_rows,
        SETUPS,
    )
    for label, rows in sweep.items():
        print_table(f"Sweep: gunicorn {label}", rows, SETUPS)
    uncached_vs_vanilla = main_rows["uncached"].rps / main_rows["vanilla"].rps
    cached_vs_ceiling = main_rows["cached"].rps / main_rows["ceiling"].rps
    out()
    out(
        f"goal (c) >= {GOAL_UNCACHED_VS_VANILLA} x (b): {uncached_vs_vanilla:.3f} "
        f"{'met' if uncached_vs_vanilla >= GOAL_UNCACHED_VS_VANILLA else 'NOT met'}"
    )
    out(
        f"goal (d) >= {GOAL_CACHED_VS_CEILING} x (a): {cached_vs_ceiling:.3f} "
        f"{'met' if cached_vs_ceiling >= GOAL_CACHED_VS_CEILING else 'NOT met'}"
    )
    for key in ("uncached", "cached") if sweep else ():
        best = max(sweep, key=lambda label, key=key: sweep[label][key].rps)
        out(f"best pool in the sweep for {key}: {best}")
    out(
        f"RESULT uncached_vs_vanilla={uncached_vs_vanilla:.3f} "
        f"cached_vs_ceiling={cached_vs_ceiling:.3f} "
        f"ceiling_rps={main_rows['ceiling'].rps:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
