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

Load comes from wrk (bench.loadgen, Debian's package, installed when missing; the run
fails when it cannot be), loopback only. Each set-up's figure is the median of its
rounds, each ratio printed with a 95 % bootstrap interval over the rounds. Checks: the
article's HTML is byte for byte the same from (b), (c) and (d) (rendered and from the
cache), and no set-up answered anything but 2xx; otherwise the run is INVALID.
``--sweep`` also measures the product under several gunicorn configurations (worker
class, workers, threads) to choose the defaults of ``cms_project/gunicorn.conf.py``.

The last line is ``RESULT uncached_vs_vanilla=X cached_vs_ceiling=X ceiling_rps=X
html_identical=1 ...`` (and the intervals), or ``INVALID <reasons>``.

Usage: flock /tmp/bench.lock make bench-overhead
       (options: python bench/overhead/run.py --help)
"""

import argparse
import hashlib
import http.client
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    MIN_P99_SAMPLES,
    RESULTS,
    Run,
    bootstrap_ratio,
    create_unlimited_plan,
    database_url,
    free_port,
    gunicorn_env,
    interleaved,
    median,
    out,
    start_pool,
    use_bench_database,
)
from bench.loadgen import (  # noqa: E402
    LoadGeneratorMissing,
    Target,
    WrkResult,
    ensure_wrk,
    wrk_closed_loop,
)

HOST = "bench.localhost"
SETUPS = {
    "ceiling": "(a) plain Django view",
    "vanilla": "(b) vanilla Wagtail",
    "uncached": "(c) product, uncached",
    "cached": "(d) product, page cache",
}
GOAL_UNCACHED_VS_VANILLA = 0.95
GOAL_CACHED_VS_CEILING = 0.7


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
    rps: float  # 2xx answers per second
    p50_ms: float
    p99_ms: float  # NaN: fewer than MIN_P99_SAMPLES requests in a round
    requests: int
    non_2xx: int  # answers other than 2xx and requests without an answer
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


def fetch(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Host": HOST})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def compare_html(ports: dict[str, int], path: str) -> dict:
    """The article's bytes from (b), (c) and (d) (twice from (d): rendered, then from
    the cache): the page this benchmark compares must be the same page."""
    bodies = {}
    for setup in ("vanilla", "uncached", "cached", "cached_hit"):
        port = ports["cached" if setup == "cached_hit" else setup]
        status, body = fetch(port, path)
        bodies[setup] = (status, body)
    reference = bodies["vanilla"][1]
    differs = {}
    for setup, (status, body) in bodies.items():
        if status != 200 or body != reference:
            position = next(
                (
                    i
                    for i, (a, b) in enumerate(zip(reference, body, strict=False))
                    if a != b
                ),
                min(len(reference), len(body)),
            )
            differs[setup] = {
                "status": status,
                "bytes": len(body),
                "first_difference_at": position,
                "vanilla_there": reference[position : position + 80].decode(
                    errors="replace"
                ),
                "here": body[position : position + 80].decode(errors="replace"),
            }
    return {
        "identical": not differs,
        "bytes": len(reference),
        "sha256": hashlib.sha256(reference).hexdigest(),
        "differs": differs,
    }


def measure(result: WrkResult) -> Measure:
    return Measure(
        rps=result.ok_rps,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        requests=result.requests,
        non_2xx=result.not_ok,
        errors=result.connect_errors + result.write_errors + result.timeouts,
    )


def measure_pools(
    setups: list[str],
    config: PoolConfig,
    urls: dict[str, str],
    *,
    rounds: int,
    seconds: float,
    connections: int,
    compare_pages: bool = False,
) -> tuple[dict[str, list[Measure]], dict | None]:
    """Start one pool per set-up, then measure them in interleaved rounds (the order
    reversed every other round), each round a wrk run of ``seconds``. Returns every
    round of every set-up and, with ``compare_pages``, the HTML comparison."""
    from bench.overhead.article import ARTICLE_PATH
    from cms_project import devstack

    processes = {}
    ports = {}
    try:
        for setup in setups:
            ports[setup] = free_port()
            processes[setup] = start_pool(
                f"overhead-{setup}",
                ports[setup],
                env=server_env(setup, config, urls),
                workers=config.workers,
            )
        html = compare_html(ports, ARTICLE_PATH) if compare_pages else None

        def load(setup: str, duration: float) -> Measure:
            return measure(
                wrk_closed_loop(
                    ports[setup],
                    [Target(HOST, ARTICLE_PATH)],
                    seconds=duration,
                    connections=connections,
                )
            )

        for setup in setups:
            load(setup, 2)  # warm every worker's caches
        measured = interleaved(
            {setup: (lambda setup=setup: load(setup, seconds)) for setup in setups},
            rounds=rounds,
        )
    finally:
        for process in processes.values():
            devstack.stop_process(process)
    return measured, html


def median_measure(rounds: list[Measure]) -> Measure:
    """Each figure the median of the rounds; a p99 only from enough requests."""
    requests = sum(m.requests for m in rounds)
    return Measure(
        rps=median([m.rps for m in rounds]),
        p50_ms=median([m.p50_ms for m in rounds]),
        p99_ms=median([m.p99_ms for m in rounds])
        if min(m.requests for m in rounds) >= MIN_P99_SAMPLES
        else float("nan"),
        requests=requests,
        non_2xx=sum(m.non_2xx for m in rounds),
        errors=sum(m.errors for m in rounds),
    )


# --- report -------------------------------------------------------------------------


def print_table(title: str, rows: dict[str, Measure], names: dict[str, str]) -> None:
    out()
    out(title)
    out(
        f"{'set-up':<28}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}"
        f"{'non-2xx':>9}"
    )
    for key, m in rows.items():
        p99 = "n/a" if m.p99_ms != m.p99_ms else f"{m.p99_ms:.2f}"
        out(
            f"{names.get(key, key):<28}{m.rps:>10.0f}{m.p50_ms:>9.2f}"
            f"{p99:>9}{m.requests:>10}{m.non_2xx:>9}"
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
        label=f"goal for (d): {GOAL_CACHED_VS_CEILING} x (a)",
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
    parser.add_argument("--seconds", type=float, default=8, help="per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--pool",
        type=parse_config,
        help="gunicorn pool of the main comparison (default: gunicorn.conf.py's), "
        "e.g. sync:4 or gthread:2x4",
    )
    parser.add_argument(
        "--sweep",
        nargs="*",
        type=parse_config,
        metavar="POOL",
        help="also measure (c) and (d) under these pools (no value: a standard set)",
    )
    parser.add_argument(
        "--reuse-databases",
        action="store_true",
        help="use the databases an earlier run prepared (smoke runs; not a headline)",
    )
    parser.add_argument(
        "--prepare-vanilla", action="store_true", help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.prepare_vanilla:
        prepare_vanilla()
        return 0
    if args.seconds < 1 or args.seconds > 60 or not 2 <= args.rounds <= 15:
        parser.error("--seconds must be 1-60 and --rounds 2-15")
    if not 1 <= args.connections <= 256:
        parser.error("--connections must be 1-256")
    run = Run("overhead", parser, args)
    try:
        ensure_wrk()
    except LoadGeneratorMissing as exc:
        run.check(False, f"no load generator: {exc}")
        return run.finish({}, {})

    config = args.pool or default_config()
    sweep_configs = args.sweep
    if sweep_configs == []:
        sweep_configs = [PoolConfig("sync", n) for n in (2, 3, 4, 5)] + [
            PoolConfig("gthread", 2, 4),
            PoolConfig("gthread", 4, 2),
        ]

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms_project.settings.dev")
    if args.reuse_databases:
        urls = {
            "vanilla": database_url("bench_overhead_vanilla"),
            "product": database_url("bench_overhead"),
        }
        out("== reusing the databases of an earlier run (--reuse-databases)")
    else:
        urls = prepare_databases()
    return measure_and_report(run, args, config, sweep_configs, urls)


def prepare_databases() -> dict[str, str]:
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
    return urls


def measure_and_report(run, args, config, sweep_configs, urls) -> int:
    sweep: dict[str, dict[str, Measure]] = {}
    for pool in sweep_configs or []:
        out(f"== sweep: gunicorn {pool.label}, 2 interleaved rounds")
        rounds, _ = measure_pools(
            ["uncached", "cached"],
            pool,
            urls,
            rounds=2,
            seconds=args.seconds,
            connections=args.connections,
        )
        sweep[pool.label] = {key: median_measure(m) for key, m in rounds.items()}

    out(
        f"== measuring (a)-(d), gunicorn {config.label}, {args.rounds} interleaved "
        f"rounds of {args.seconds:g} s, wrk with {args.connections} connections"
    )
    rounds_of, html = measure_pools(
        list(SETUPS),
        config,
        urls,
        rounds=args.rounds,
        seconds=args.seconds,
        connections=args.connections,
        compare_pages=True,
    )
    main_rows = {key: median_measure(m) for key, m in rounds_of.items()}
    rps = {key: [m.rps for m in m_rounds] for key, m_rounds in rounds_of.items()}
    uncached_vs_vanilla = bootstrap_ratio(rps["uncached"], rps["vanilla"])
    cached_vs_ceiling = bootstrap_ratio(rps["cached"], rps["ceiling"])

    run.check(
        html["identical"],
        "the article's HTML differs between set-ups: "
        + ", ".join(
            f"{setup} at byte {d['first_difference_at']} ({d['status']})"
            for setup, d in html["differs"].items()
        ),
    )
    for key, row in main_rows.items():
        run.check(
            row.non_2xx == 0,
            f"{SETUPS[key]}: {row.non_2xx} answers other than 2xx or lost",
        )

    figures = {
        "pool": config.label,
        "load_generator": "wrk",
        "connections": args.connections,
        "html": html,
        "main": {key: asdict(m) for key, m in main_rows.items()},
        "rounds": {
            key: [asdict(m) for m in m_rounds] for key, m_rounds in rounds_of.items()
        },
        "ratios": {
            "uncached_vs_vanilla": dict(
                zip(("median", "ci_low", "ci_high"), uncached_vs_vanilla, strict=True)
            ),
            "cached_vs_ceiling": dict(
                zip(("median", "ci_low", "ci_high"), cached_vs_ceiling, strict=True)
            ),
        },
        "sweep": {
            label: {key: asdict(m) for key, m in rows.items()}
            for label, rows in sweep.items()
        },
    }
    RESULTS.mkdir(exist_ok=True)
    plot(main_rows, config, sweep)

    print_table(
        f"Same article page, gunicorn {config.label}, {args.connections} connections, "
        f"median of {args.rounds} interleaved rounds of {args.seconds:g} s "
        f"(p99 only from >= {MIN_P99_SAMPLES} requests per round)",
        main_rows,
        SETUPS,
    )
    for label, rows in sweep.items():
        print_table(f"Sweep: gunicorn {label}", rows, SETUPS)
    out()
    out(
        f"HTML of (b), (c), (d) rendered and (d) cached: "
        f"{'identical' if html['identical'] else 'DIFFERENT'} "
        f"({html['bytes']} bytes, sha256 {html['sha256'][:12]})"
    )
    for label, (ratio, low, high), goal in (
        ("(c) / (b)", uncached_vs_vanilla, GOAL_UNCACHED_VS_VANILLA),
        ("(d) / (a)", cached_vs_ceiling, GOAL_CACHED_VS_CEILING),
    ):
        out(
            f"{label}: {ratio:.3f} (95 % bootstrap interval {low:.3f}-{high:.3f}); "
            f"goal >= {goal}: {'met' if ratio >= goal else 'NOT met'}"
        )
    return run.finish(
        {
            "uncached_vs_vanilla": uncached_vs_vanilla[0],
            "cached_vs_ceiling": cached_vs_ceiling[0],
            "ceiling_rps": round(main_rows["ceiling"].rps),
            "html_identical": int(html["identical"]),
            "uncached_vs_vanilla_ci_low": uncached_vs_vanilla[1],
            "uncached_vs_vanilla_ci_high": uncached_vs_vanilla[2],
            "cached_vs_ceiling_ci_low": cached_vs_ceiling[1],
            "cached_vs_ceiling_ci_high": cached_vs_ceiling[2],
        },
        figures,
    )


if __name__ == "__main__":
    sys.exit(main())
