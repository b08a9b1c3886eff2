"""Noisy-neighbour benchmark: do tariff limits keep one tenant's flood away from the
other tenants on the same gunicorn pool?

Runs in a database of its own (``<name>_bench_noisy``, dropped and re-created) on the
configured PostgreSQL and Redis, with one gunicorn pool (production settings). Steps,
all in one run:

1. baseline: three quiet tenants (plan ``pro``) each get a steady open-loop load well
   within their plan;
2. flood: the same, while a fourth tenant on a small plan of its own sends 20 times its
   plan's public reads per minute, from many clients;
3. bust: the same flood, each request with a query string of its own (``?b=<n>``), as
   a cache-busting flood sends: it must cost no more than the cached flood;
4. client flood: the quiet tenants as before, while one client floods a fifth tenant
   (plan ``pro``) at twice the tenant's whole allowance and another client of that
   tenant reads at a modest rate: the other client must keep being served (the
   per-client share, ``public_reads_per_client_per_minute``);
   the four phases alternate in blocks (``--rounds``), so that a disturbance from
   outside the benchmark is less likely to land in one phase only;
5. the cost of the limit decision itself, in-process against the same Redis: taking
   and releasing a concurrency slot and counting the request against the rate limit,
   as the middleware and the view decorator do for every public page.

Clients are told apart by ``X-Forwarded-For`` (the pool trusts 127.0.0.1 as its
proxy, as it would trust Caddy or HAProxy): each quiet tenant's load comes from 20
visitors, the noisy flood from 64. Quiet tenants' latency is measured from the moment
each request was due, so queueing behind the flood counts; anything but a 200 for a
quiet tenant is an error. It prints a table, writes
``bench/results/noisy_neighbour.json`` and ``noisy_neighbour.png``; the last line is
``RESULT quiet_p99_ratio=X quiet_errors=N noisy_limited_share=X limit_overhead_ms=X
bust_quiet_p99_ratio=X same_tenant_other_client_ok_share=X``, where a ratio is the
worst quiet tenant's p99 in that phase over its own baseline p99.

Usage: make bench-noisy_neighbour  (options: python bench/noisy_neighbour/run.py --help)
"""

import argparse
import json
import math
import os
import statistics
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
from bench.common import (
    MIN_P99_SAMPLES,
    RESULTS,
    Run,
    calibrated_rate,
    database_url,
    free_port,
    gunicorn_env,
    out,
    percentile,
    pool_log,
    start_pool,
    tail,
    use_bench_database,
)

QUIET = [f"nb_quiet{i}" for i in (1, 2, 3)]
NOISY = "nb_noisy"
NOISY_PLAN = "nb-noisy"
SHARED = "nb_shared"  # one client floods it while another reads
LIMITED = (429, 503)
PHASES = (
    "baseline",
    "flood",
    "bust",
    "client_flood",
    "saturate",
    "uncached_baseline",
    "uncached_flood",
)
# phases served by the second pool, the page cache off
UNCACHED_PHASES = ("uncached_baseline", "uncached_flood")
ARTICLES = 5  # per tenant, for uncached reads spread over pages
# a saturating flood keeps this many requests in flight per worker
FLOOD_CONNECTIONS_PER_WORKER = 4
FLOODER, OTHER_CLIENT = "192.0.2.66", "192.0.2.99"
OTHER_CLIENT_RATE = 5.0


def clients(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}.{n}" for n in range(1, count + 1))


def host(slug: str) -> str:
    return f"{slug.replace('_', '-')}.localhost"


def set_up_tenants(*, noisy_reads_per_minute: int, noisy_cap: int) -> None:
    from django.core.management import call_command
    from django.db import connection

    from tenants.provisioning.creation import tenant_create
    from tenants.tariffs.plans import plan_create

    call_command("migrate", verbosity=0)
    plan_create(
        name=NOISY_PLAN,
        base="starter",
        title="Noisy neighbour bench",
        limits={
            "public_reads_per_minute": noisy_reads_per_minute,
            "concurrent_requests": noisy_cap,
        },
    )
    for slug in [*QUIET, SHARED]:
        tenant_create(
            slug=slug,
            name=slug,
            domains=[host(slug)],
            plan="pro",
            admin_password="bench-password-1",
        )
    tenant_create(
        slug=NOISY,
        name=NOISY,
        domains=[host(NOISY)],
        plan=NOISY_PLAN,
        admin_password="bench-password-1",
    )
    for slug in [*QUIET, NOISY]:
        add_articles(slug)
    connection.set_schema_to_public()


def article_paths() -> tuple[str, ...]:
    return tuple(f"/article-{n}/" for n in range(1, ARTICLES + 1))


def add_articles(slug: str) -> None:
    """``ARTICLES`` published articles of the overhead benchmark's size."""
    import datetime as dt

    from django_tenants.utils import schema_context
    from wagtail.models import Site

    from content.models import ArticlePage

    with schema_context(slug):
        home = Site.objects.get(is_default_site=True).root_page.specific
        for n in range(1, ARTICLES + 1):
            article = ArticlePage(
                title=f"Article {n}",
                slug=f"article-{n}",
                intro="A page rendered for every read when the page cache is off.",
                publication_date=dt.date(2026, 1, n),
                body=[
                    (
                        "paragraph",
                        f"<p>Paragraph {p} of article {n}: long enough to look "
                        "like a real article rather than a greeting.</p>",
                    )
                    for p in range(1, 6)
                ],
            )
            home.add_child(instance=article)
            article.save_revision().publish()


def clear_limit_counters() -> None:
    """Forget the bench tenants' rate counters and slots (warm-up requests, or an
    earlier run within the same minute, would otherwise count), and nothing else: the
    page cache shares the Redis database and stays warm."""
    from django_redis import get_redis_connection

    from tenants.tariffs.admission import slots_key

    client = get_redis_connection("state")
    for slug in [*QUIET, NOISY, SHARED]:
        # "<schema>:<prefix>:<version>:rl:<digest>" (django-tenants' key function)
        for pattern in (f"{slug}:*:rl:*", slots_key(slug)):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)


def summarize_quiet(result) -> dict:
    latencies = result.latencies_ms
    return {
        "host": result.schedule.host,
        "rate": result.schedule.rate,
        "requests": result.requests,
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "errors": result.requests - result.count(200),
        "statuses": {str(s): result.statuses.count(s) for s in set(result.statuses)},
    }


def summarize_noisy(result) -> dict:
    limited = result.latencies_of(*LIMITED)
    served = result.latencies_of(200)
    return {
        "host": result.schedule.host,
        "rate": result.schedule.rate,
        "requests": result.requests,
        "ok": result.count(200),
        "status_429": result.count(429),
        "status_503": result.count(503),
        "other": result.requests - result.count(200, *LIMITED),
        "limited_share": len(limited) / result.requests,
        "limited_p50_ms": statistics.median(limited) if limited else float("nan"),
        "limited_p99_ms": percentile(limited, 99),
        "served_p50_ms": statistics.median(served) if served else float("nan"),
    }


def phase_schedules(args, rates: dict, ports: dict[str, int]) -> dict:
    """Each phase's open-loop load: the quiet tenants always, plus that phase's
    flood when an open loop can send it (the saturating floods run on wrk)."""
    quiet_rate, noisy_rate = rates["quiet"], rates["noisy"]
    from bench.loadgen import Schedule

    quiet = [
        Schedule(
            host=host(slug),
            rate=quiet_rate,
            connections=8,
            clients=clients(f"198.51.{100 + index}", 20),
        )
        for index, slug in enumerate(QUIET)
    ]
    many = clients("203.0.113", 64)
    noisy = Schedule(host=host(NOISY), rate=noisy_rate, connections=32, clients=many)
    busting = Schedule(
        host=host(NOISY), rate=noisy_rate, connections=32, clients=many, bust_cache=True
    )
    flooder = Schedule(
        host=host(SHARED),
        rate=args.client_flood_rate,
        connections=32,
        clients=(FLOODER,),
    )
    other = Schedule(
        host=host(SHARED),
        rate=OTHER_CLIENT_RATE,
        connections=4,
        clients=(OTHER_CLIENT,),
    )
    quiet_uncached = [
        Schedule(
            host=host(slug),
            rate=rates["quiet_uncached"],
            paths=article_paths(),
            connections=8,
            clients=clients(f"198.51.{100 + index}", 20),
            port=ports["uncached"],
        )
        for index, slug in enumerate(QUIET)
    ]
    return {
        "baseline": quiet,
        "flood": [*quiet, noisy],
        "bust": [*quiet, busting],
        "client_flood": [*quiet, flooder, other],
        "saturate": quiet,
        "uncached_baseline": quiet_uncached,
        "uncached_flood": quiet_uncached,
    }


def floods(ports: dict[str, int], workers: int) -> dict:
    """The wrk floods that run beside the quiet tenants' open loop: the noisy
    tenant's pages from 64 clients, ``FLOOD_CONNECTIONS_PER_WORKER`` requests in
    flight per worker, so that every worker always has flood requests waiting."""
    from bench.loadgen import Target

    many = clients("203.0.113", 64)
    return {
        "saturate": (
            ports["cached"],
            [Target(host(NOISY), "/", client) for client in many],
        ),
        "uncached_flood": (
            ports["uncached"],
            [
                Target(host(NOISY), path, client)
                for client in many
                for path in article_paths()
            ],
        ),
        "connections": FLOOD_CONNECTIONS_PER_WORKER * workers,
    }


def measure_capacity(port: int, targets, *, workers: int, seconds: float = 4) -> float:
    """Answers per second the pool gives ``targets`` at full load (wrk, twice as
    many connections as workers), whatever their status."""
    from bench.loadgen import wrk_closed_loop

    result = wrk_closed_loop(
        port, targets, seconds=seconds, connections=2 * workers, count_statuses=False
    )
    return result.rps


def run_block(port: int, schedules: list, seconds: float, flood=None) -> tuple:
    """One block: the open-loop schedules and, beside them, a wrk flood (``flood``:
    port, targets, connections) for the same time. Returns the open loop's results
    and the flood's (or None)."""
    from bench.loadgen import open_loop, wrk_closed_loop

    flooded: dict = {}
    thread = None
    if flood is not None:
        flood_port, targets, connections = flood

        def run_flood() -> None:
            flooded["result"] = wrk_closed_loop(
                flood_port,
                targets,
                seconds=seconds + 1,
                connections=connections,
                count_statuses=True,
            )

        thread = threading.Thread(target=run_flood)
        thread.start()
    results = open_loop(port, schedules, seconds=seconds)
    if thread is not None:
        thread.join()
    return results, flooded.get("result")


def run_phases(args, run: Run) -> tuple:
    """Every load phase against two gunicorn pools (page cache as configured, and
    off), in alternating blocks; capacities and rates measured first."""
    from bench.loadgen import Target, sweep
    from cms_project import devstack

    ports = {"cached": free_port(), "uncached": free_port()}
    env = gunicorn_env(workers=args.workers)
    env["CMS_TRUSTED_PROXIES"] = "127.0.0.1/32"
    env["LOG_LEVEL"] = "INFO"  # the access events tell time inside Django
    if args.page_cache_seconds is not None:
        env["CMS_PAGE_CACHE_SECONDS"] = str(args.page_cache_seconds)
    pools = {}
    block = args.seconds / args.rounds
    blocks: dict[str, list] = {phase: [] for phase in PHASES}
    flood_blocks: dict[str, list] = {phase: [] for phase in PHASES}
    spans: list[tuple[str, float, float]] = []  # phase, wall-clock start and end
    everyone = [host(slug) for slug in [*QUIET, NOISY, SHARED]]
    try:
        pools["cached"] = start_pool(
            "noisy-cached", ports["cached"], env=env, workers=args.workers
        )
        pools["uncached"] = start_pool(
            "noisy-uncached",
            ports["uncached"],
            env=env | {"CMS_PAGE_CACHE_SECONDS": "0"},
            workers=args.workers,
        )
        # every tenant's caches and database connections warm in every worker
        for port in ports.values():
            sweep(port, everyone, repeat=4 * args.workers)
        # many clients, as the quiet load has: one client would meet its
        # per-client share and measure cheap refusals instead of pages
        quiet_pages = [
            Target(host(slug), path, client)
            for index, slug in enumerate(QUIET)
            for client in clients(f"198.51.{100 + index}", 20)
            for path in article_paths()
        ]
        capacity = {
            "flood_cached": measure_capacity(
                ports["cached"],
                floods(ports, args.workers)["saturate"][1],
                workers=args.workers,
            ),
            "uncached": measure_capacity(
                ports["uncached"], quiet_pages, workers=args.workers
            ),
        }
        rates = {
            "quiet": args.quiet_rate,
            "noisy": args.flood_factor * args.noisy_reads_per_minute / 60,
            # the quiet tenants together at a share of what the pool renders
            "quiet_uncached": calibrated_rate(
                capacity["uncached"], fraction=args.uncached_load
            )
            / len(QUIET),
        }
        out(
            f"== capacity: {capacity['flood_cached']:.0f} answers/s to the noisy "
            f"tenant's flood, {capacity['uncached']:.0f} uncached pages/s; quiet "
            f"tenants read uncached pages at {rates['quiet_uncached']:.1f}/s each "
            f"({args.uncached_load:.0%} of it)"
        )
        schedules = phase_schedules(args, rates, ports)
        wrk_floods = floods(ports, args.workers)
        flood_of = {
            "saturate": (*wrk_floods["saturate"], wrk_floods["connections"]),
            "uncached_flood": (
                *wrk_floods["uncached_flood"],
                wrk_floods["connections"],
            ),
        }
        # and a short open-loop run, not measured: the first block must not pay for
        # anything cold (it would flatter whichever phase comes second)
        run_block(ports["cached"], schedules["flood"], 3)
        # from here on the counters run as in production: the noisy tenant gets its
        # plan's reads per (fixed, 60 s) window, however the blocks fall
        clear_limit_counters()
        for round_number in range(1, args.rounds + 1):
            for phase in PHASES:
                flood = flood_of.get(phase)
                out(
                    f"== round {round_number}/{args.rounds}, {phase}: "
                    + ", ".join(
                        f"{s.host} {s.rate:g}/s"
                        + (" (cache-busting)" if s.bust_cache else "")
                        for s in schedules[phase]
                    )
                    + (
                        f" + wrk flood on {host(NOISY)}, {flood[2]} connections"
                        if flood
                        else ""
                    )
                    + f", {block:g} s"
                )
                port = ports["uncached" if phase in UNCACHED_PHASES else "cached"]
                began = time.time()
                results, flooded = run_block(port, schedules[phase], block, flood)
                blocks[phase].append(results)
                flood_blocks[phase].append(flooded)
                spans.append((phase, began, time.time()))
    finally:
        for process in pools.values():
            devstack.stop_process(process)
    phases = {phase: merge_blocks(results) for phase, results in blocks.items()}
    for phase, results in phases.items():
        for result in results:
            run.check_open_loop(f"{phase}, {result.schedule.host}", result)
    flood_figures = {
        phase: summarize_floods(results, block)
        for phase, results in flood_blocks.items()
        if any(results)
    }
    in_django = server_side(
        [pool_log("noisy-cached"), pool_log("noisy-uncached")], spans
    )
    return phases, in_django, capacity, rates, flood_figures


def summarize_floods(results: list, seconds: float) -> dict:
    """A wrk flood over its blocks: answers per second and their statuses."""
    statuses: dict[str, int] = {}
    for result in results:
        for status, count in result.statuses.items():
            statuses[str(status)] = statuses.get(str(status), 0) + count
    requests = sum(result.requests for result in results)
    return {
        "requests": requests,
        "answers_per_second": requests / sum(result.seconds for result in results),
        "statuses": statuses,
        "lost": sum(
            result.connect_errors + result.write_errors + result.timeouts
            for result in results
        ),
    }


def server_side(logs: list[Path], spans: list[tuple[str, float, float]]) -> dict:
    """Time spent inside Django per request, from the product's own access events
    (JSON lines, production's log format): it tells time in the application from
    time waiting for a worker or a CPU outside it."""
    durations: dict[str, dict[str, list[float]]] = {
        phase: {"quiet": [], "noisy": []} for phase in PHASES
    }
    lines = [
        line for log in logs for line in log.read_text(errors="replace").splitlines()
    ]
    for line in lines:
        if not line.startswith("{") or '"cms.access"' not in line:
            continue
        event = json.loads(line)
        tenant = event.get("tenant", "")
        kind = (
            "quiet"
            if tenant in QUIET
            else "noisy"
            if tenant in (NOISY, SHARED)
            else None
        )
        if kind is None or "duration_ms" not in event:
            continue
        when = datetime.fromisoformat(event["time"]).timestamp()
        for phase, began, ended in spans:
            if began <= when <= ended + 0.2:
                durations[phase][kind].append(event["duration_ms"])
                break
    return {
        phase: {
            kind: {
                "requests": len(values),
                "p50_ms": statistics.median(values) if values else float("nan"),
                "p99_ms": percentile(values, 99),
            }
            for kind, values in kinds.items()
        }
        for phase, kinds in durations.items()
    }


def merge_blocks(blocks: list[list]) -> list:
    """One result per schedule over all blocks of a phase, due times laid end to end
    (the phase's own time axis)."""
    from bench.loadgen import OpenLoopResult

    merged = []
    for results in zip(*blocks, strict=True):
        whole = OpenLoopResult(schedule=results[0].schedule, seconds=0.0)
        for result in results:
            whole.due_s += [whole.seconds + due for due in result.due_s]
            whole.latencies_ms += result.latencies_ms
            whole.statuses += result.statuses
            whole.client_lag_ms += result.client_lag_ms
            whole.sending_span_s += result.sending_span_s
            whole.seconds += result.seconds
        merged.append(whole)
    return merged


def measure_limit_overhead(calls: int) -> dict:
    """What the limit decision costs a public page, in-process against the real
    Redis: the public page decision (concurrency slot, the count against the plan's
    rate and the page-cache lookup, one Lua script) plus releasing the slot, timed
    together. (Served, the release rides on the request's metering round trip; here
    it is a round trip of its own, so the figure is an upper bound.)"""
    from django.db import connection
    from django.test import RequestFactory
    from django_redis import get_redis_connection

    from tenants.models import Tenant
    from tenants.request_path.decision import decide_page_request

    tenant = Tenant.objects.select_related("plan").get(schema_name=QUIET[0])
    connection.set_tenant(tenant)
    request = RequestFactory().get("/", HTTP_HOST=host(QUIET[0]))
    request.tenant = tenant
    redis = get_redis_connection("state")
    timings = []
    try:
        for index in range(calls + 200):
            # a visitor of its own per call: the per-client share must not refuse
            # the measured calls (a refusal skips the cache lookup)
            request.META["REMOTE_ADDR"] = f"198.18.{index // 250}.{index % 250}"
            began = time.perf_counter()
            decision = decide_page_request(request, tenant)
            pipe = redis.pipeline(transaction=False)
            decision.release(pipe)
            pipe.execute()
            if index >= 200:  # the first calls load the Lua script and connect
                timings.append((time.perf_counter() - began) * 1000)
    finally:
        connection.set_schema_to_public()
        clear_limit_counters()
    return {
        "calls": calls,
        "p50_ms": statistics.median(timings),
        "p99_ms": percentile(timings, 99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=60,
        help="length of each phase (baseline, flood), split over the rounds",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=6,
        help="baseline and flood blocks alternate this many times",
    )
    parser.add_argument(
        "--quiet-rate", type=float, default=20, help="req/s of each quiet tenant"
    )
    parser.add_argument(
        "--noisy-reads-per-minute",
        type=int,
        default=300,
        help="public_reads_per_minute of the noisy tenant's plan",
    )
    parser.add_argument(
        "--noisy-cap", type=int, default=2, help="the noisy plan's concurrency cap"
    )
    parser.add_argument("--flood-factor", type=float, default=20)
    parser.add_argument(
        "--client-flood-rate",
        type=float,
        default=100,
        help="req/s of the one client flooding a pro tenant (its plan: 50/s for "
        "the tenant, 12.5/s per client)",
    )
    parser.add_argument(
        "--uncached-load",
        type=float,
        default=0.6,
        help="the quiet tenants' uncached reads together, as a share of the pool's "
        "uncached capacity measured in the run",
    )
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument(
        "--reuse-database",
        action="store_true",
        help="use the database an earlier run set up (smoke runs; not a headline)",
    )
    parser.add_argument("--overhead-calls", type=int, default=5000)
    parser.add_argument(
        "--page-cache-seconds",
        type=int,
        help="CMS_PAGE_CACHE_SECONDS for the pool (0: every page rendered); "
        "default: the product's",
    )
    args = parser.parse_args()
    if (
        args.rounds < 1
        or args.seconds / max(args.rounds, 1) < 3
        or args.quiet_rate <= 0
        or args.noisy_reads_per_minute < 1
    ):
        parser.error(
            "need --rounds >= 1, --seconds / --rounds >= 3, --quiet-rate > 0 and a "
            "noisy plan of at least 1 read per minute"
        )

    if not 0.05 <= args.uncached_load <= 1:
        parser.error("--uncached-load must be 0.05-1")
    run = Run("noisy_neighbour", parser, args)

    if args.reuse_database:
        os.environ["DATABASE_URL"] = database_url("bench_noisy")
    else:
        use_bench_database("bench_noisy")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms_project.settings.dev")
    import django

    django.setup()

    if args.reuse_database:
        out("== reusing the database of an earlier run (--reuse-database)")
    else:
        out("== setting up a fresh benchmark database (migrate, 5 tenants, articles)")
        set_up_tenants(
            noisy_reads_per_minute=args.noisy_reads_per_minute,
            noisy_cap=args.noisy_cap,
        )
    phases, in_django, capacity, rates, flood_figures = run_phases(args, run)
    noisy_rate = rates["noisy"]
    out(f"== cost of the limit decision, {args.overhead_calls} calls in-process")
    overhead = measure_limit_overhead(args.overhead_calls)

    quiet = {
        phase: [summarize_quiet(result) for result in results[: len(QUIET)]]
        for phase, results in phases.items()
    }
    pooled = {
        phase: [lat for result in results[: len(QUIET)] for lat in result.latencies_ms]
        for phase, results in phases.items()
    }
    noisy = summarize_noisy(phases["flood"][len(QUIET)])
    busting = summarize_noisy(phases["bust"][len(QUIET)])
    flooder = summarize_noisy(phases["client_flood"][len(QUIET)])
    other = phases["client_flood"][len(QUIET) + 1]
    other_ok_share = other.count(200) / other.requests if other.requests else 0.0

    def worst_ratio(phase: str) -> list[float]:
        return [
            during["p99_ms"] / base["p99_ms"]
            for base, during in zip(quiet["baseline"], quiet[phase], strict=True)
        ]

    ratios = worst_ratio("flood")
    bust_ratios = worst_ratio("bust")
    quiet_errors = sum(row["errors"] for rows in quiet.values() for row in rows)

    def pooled_ratio(phase: str, baseline: str) -> float:
        """All quiet tenants' requests as one group (three tenants' worth of
        samples: a p99 needs 1,000)."""
        for name in (phase, baseline):
            run.check_p99(f"quiet tenants, {name}", len(pooled[name]))
        during, before = tail(pooled[phase]), tail(pooled[baseline])
        if during is None or before is None:
            return float("nan")
        return during / before

    saturating_ratio = pooled_ratio("saturate", "baseline")
    uncached_ratio = pooled_ratio("uncached_flood", "uncached_baseline")
    for phase, flood in flood_figures.items():
        run.check(
            flood["lost"] == 0,
            f"{phase}: {flood['lost']} flood requests got no answer",
        )
        unexpected = {
            status: count
            for status, count in flood["statuses"].items()
            if status not in ("200", "429", "503")
        }
        run.check(not unexpected, f"{phase}: the flood got {unexpected}")
    saturated = flood_figures.get("saturate", {}).get("answers_per_second", 0.0)
    run.check(
        saturated + len(QUIET) * rates["quiet"] >= 0.7 * capacity["flood_cached"],
        f"saturate: the pool answered {saturated:.0f} flood requests/s of "
        f"{capacity['flood_cached']:.0f} measured: it was not saturated",
    )
    figures = {
        "settings": {
            "seconds_per_phase": args.seconds,
            "rounds": args.rounds,
            "quiet_rate_per_tenant": args.quiet_rate,
            "quiet_plan": "pro",
            "noisy_rate": noisy_rate,
            "noisy_plan": {
                "public_reads_per_minute": args.noisy_reads_per_minute,
                "concurrent_requests": args.noisy_cap,
            },
            "gunicorn_workers": args.workers,
            "page_cache_seconds": args.page_cache_seconds,
            "cpus": os.cpu_count(),
        },
        "quiet": quiet,
        "quiet_pooled": {
            phase: {
                "p50_ms": statistics.median(values),
                "p99_ms": percentile(values, 99),
            }
            for phase, values in pooled.items()
        },
        "noisy": noisy,
        "bust": busting,
        "client_flood": {
            "flooder": flooder,
            "other_client": {
                "rate": OTHER_CLIENT_RATE,
                "requests": other.requests,
                "ok": other.count(200),
                "ok_share": other_ok_share,
                "statuses": {
                    str(s): other.statuses.count(s) for s in set(other.statuses)
                },
            },
        },
        "capacity": capacity,
        "rates": rates,
        "floods": flood_figures,
        "saturating_quiet_p99_ratio": saturating_ratio,
        "uncached_quiet_p99_ratio": uncached_ratio,
        "samples": {phase: len(values) for phase, values in pooled.items()},
        "bust_quiet_p99_ratio_worst": max(bust_ratios),
        "same_tenant_other_client_ok_share": other_ok_share,
        "limit_overhead": overhead,
        "in_django": in_django,
        "quiet_p99_ratio_worst": max(ratios),
        "quiet_errors": quiet_errors,
    }
    RESULTS.mkdir(exist_ok=True)
    plot(phases, figures)
    report(figures, ratios)
    out(
        "p99 bust / baseline per quiet tenant: "
        + ", ".join(f"{ratio:.2f}" for ratio in bust_ratios)
    )
    out(
        f"client flood: the flooder ({args.client_flood_rate:g}/s) got "
        f"{flooder['ok']} x 200, {flooder['status_429']} x 429; the other client "
        f"of the same tenant got {other.count(200)} of {other.requests} served"
    )
    for phase, flood in flood_figures.items():
        out(
            f"{phase}: wrk flood on {host(NOISY)} answered "
            f"{flood['answers_per_second']:.0f}/s ({flood['statuses']}); "
            f"quiet p99 {tail(pooled[phase]) or float('nan'):.1f} ms"
        )
    out(
        f"p99 of all quiet tenants (>= {MIN_P99_SAMPLES} samples): saturating flood "
        f"/ baseline {saturating_ratio:.2f}; uncached flood / uncached baseline "
        f"{uncached_ratio:.2f}"
    )
    return run.finish(
        {
            "quiet_p99_ratio": max(ratios),
            "quiet_errors": quiet_errors,
            "noisy_limited_share": noisy["limited_share"],
            "limit_overhead_ms": overhead["p50_ms"],
            "bust_quiet_p99_ratio": max(bust_ratios),
            "same_tenant_other_client_ok_share": other_ok_share,
            "saturating_quiet_p99_ratio": saturating_ratio,
            "uncached_quiet_p99_ratio": uncached_ratio,
        },
        without_nan(figures),
    )


def without_nan(value):
    """NaN (no requests of a kind) as null: strict JSON readers reject NaN."""
    if isinstance(value, dict):
        return {key: without_nan(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nan(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def report(figures: dict, ratios: list[float]) -> None:
    out()
    out(
        f"{'quiet tenant':<22}{'phase':<10}{'requests':>9}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'max ms':>9}{'errors':>8}"
    )
    for phase in ("baseline", "flood"):
        for row in figures["quiet"][phase]:
            out(
                f"{row['host']:<22}{phase:<10}{row['requests']:>9}"
                f"{row['p50_ms']:>9.1f}{row['p99_ms']:>9.1f}{row['max_ms']:>9.1f}"
                f"{row['errors']:>8}"
            )
    for phase, row in figures["quiet_pooled"].items():
        out(
            f"{'all quiet':<22}{phase:<10}{'':>9}"
            f"{row['p50_ms']:>9.1f}{row['p99_ms']:>9.1f}"
        )
    out(
        "p99 flood / baseline per quiet tenant: "
        + ", ".join(f"{ratio:.2f}" for ratio in ratios)
    )
    for phase, kinds in figures["in_django"].items():
        quiet, noisy = kinds["quiet"], kinds["noisy"]
        if quiet["requests"]:
            out(
                f"inside Django, {phase}: quiet p50 {quiet['p50_ms']:.1f} ms, p99 "
                f"{quiet['p99_ms']:.1f} ms"
                + (
                    f"; noisy p50 {noisy['p50_ms']:.1f} ms, "
                    f"p99 {noisy['p99_ms']:.1f} ms"
                    if noisy["requests"]
                    else ""
                )
            )
    noisy = figures["noisy"]
    out()
    out(
        f"noisy tenant {noisy['host']}: {noisy['requests']} requests at "
        f"{noisy['rate']:g}/s: {noisy['ok']} served, {noisy['status_429']} x 429, "
        f"{noisy['status_503']} x 503, {noisy['other']} other"
    )
    out(
        f"  limited share {noisy['limited_share']:.3f}; limited answers p50 "
        f"{noisy['limited_p50_ms']:.1f} ms, p99 {noisy['limited_p99_ms']:.1f} ms; "
        f"served pages p50 {noisy['served_p50_ms']:.1f} ms"
    )
    overhead = figures["limit_overhead"]
    out(
        f"limit decision (hot-path script + slot release), in-process: p50 "
        f"{overhead['p50_ms']:.3f} ms, p99 {overhead['p99_ms']:.3f} ms"
    )


def plot(phases: dict, figures: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, middle, bottom) = plt.subplots(3, 1, figsize=(11, 10))
    rounds = figures["settings"]["rounds"]
    block = figures["settings"]["seconds_per_phase"] / rounds
    colors = {"baseline": "#37a", "flood": "#c83"}
    for phase_index, phase in enumerate(("baseline", "flood")):
        for result in phases[phase][: len(QUIET)]:
            # back on the run's own clock: baseline and flood blocks alternate
            times = [
                (2 * int(due // block) + phase_index) * block + due % block
                for due in result.due_s
            ]
            top.scatter(times, result.latencies_ms, s=2, color=colors[phase])
        top.scatter([], [], s=8, color=colors[phase], label=f"{phase} (3 tenants)")
    for edge in range(1, 2 * rounds):
        top.axvline(edge * block, color="#888", linestyle=":")
    top.set_yscale("log")
    top.set_ylabel("latency from due time (ms)")
    top.set_xlabel("seconds of load (baseline and flood blocks alternate)")
    top.set_title("Quiet tenants' requests")
    top.legend(fontsize=8)

    noisy = phases["flood"][len(QUIET)]
    seconds = int(noisy.seconds)
    for status, color in ((200, "#37a"), (429, "#c83"), (503, "#c33")):
        per_second = [0] * (seconds + 1)
        for due, got in zip(noisy.due_s, noisy.statuses, strict=True):
            if got == status:
                per_second[int(due)] += 1
        middle.plot(range(seconds + 1), per_second, label=str(status), color=color)
    middle.set_ylabel("responses per second")
    middle.set_xlabel("seconds of flood (blocks laid end to end)")
    middle.set_title("Noisy tenant's answers")
    middle.legend()

    labels, base, flood = [], [], []
    for before, after in zip(
        figures["quiet"]["baseline"], figures["quiet"]["flood"], strict=True
    ):
        labels.append(before["host"].split(".")[0])
        base.append(before["p99_ms"])
        flood.append(after["p99_ms"])
    positions = range(len(labels))
    bottom.bar([p - 0.2 for p in positions], base, width=0.4, label="baseline p99")
    bottom.bar([p + 0.2 for p in positions], flood, width=0.4, label="flood p99")
    bottom.set_xticks(list(positions), labels)
    bottom.set_ylabel("ms")
    bottom.set_title("Quiet tenants' p99 latency")
    bottom.legend()
    figure.tight_layout()
    figure.savefig(RESULTS / "noisy_neighbour.png", dpi=100)


if __name__ == "__main__":
    sys.exit(main())
