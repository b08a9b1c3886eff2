"""Pods: a tenant moved live between two pods under load, the router's cost, and what
a dead pod does to the other pod's tenants (issue 17).

Two real pods on this machine (tests/pods.py: each a PrivateStack with PostgreSQL at
``wal_level = logical``, Redis and a 2-worker gunicorn pool; the demo tenant acme on
pod1, globex on pod2; a directory database on the configured PostgreSQL server;
``manage.py pods router`` running HAProxy in front). Both tenants' plans get rate
and concurrency limits far above anything this run sends (``plans update``, written
through to every pod): every client here is 127.0.0.1, so per-client limits would
otherwise turn the load into 429s. Then acme gets ``--pages`` pages (ArticlePages
under its home page, one ``manage.py shell`` on pod1). Everything this script starts
is stopped by its process id.

1. Router cost: wrk (bench.loadgen) on globex's cached pages, straight to pod2's pool
   and through HAProxy, in ``--rounds`` interleaved rounds (order reversed every
   other round) of four set-ups: direct and routed with pod2's pool on one CPU and
   HAProxy and wrk on the other (the router as deployed, on a machine of its own:
   the headline, what routing costs the pool's throughput), and direct and routed
   with everything sharing both CPUs (on a 2-core machine HAProxy's CPU is then
   taken from the pool: ``router_rps_ratio_shared_cpu``, with HAProxy's CPU per
   request). Requests/s through the router over direct, median of the rounds, with
   a 95 % bootstrap interval. Any answer but 2xx makes the run INVALID. The
   shared-CPU router rate is the capacity the next step calibrates from.
2. Pod down: open-loop load through the router (latency from the moment a request
   was due) at ``--load`` x that capacity on globex (pod2) and ``--dead-pod-load`` x
   on acme (pod1, whose visitors keep coming while their pod is dead), both lowered
   in proportion until the whole machine is at most ``--max-busy`` busy under them
   (probes of 4 s, not counted, after a 2 s warm-up: client, router and both pods
   share the cores, and the Python open-loop client costs more per request than
   wrk, with which the capacity was measured), then ``--down-rounds`` interleaved
   rounds of two blocks, both pods up, and pod1's pool killed (SIGKILL of its
   gunicorn master and workers just before the block; started again after it).
   Each round's ratio: globex's p99 in its down block over its p99 in its up block
   (each block at least 1,000 requests, else INVALID); the figure is the median of
   the rounds' ratios with a 95 % bootstrap interval, so that one block's spike
   from the rest of the machine (per-block p99 varies 4-56 ms here in either
   condition) moves it no more than any other round. The pooled p99 ratio is
   printed beside it. Globex answered anything but 200, or acme anything but 200
   while pod1 was up: INVALID. (On one machine the dead pool also frees CPU for
   pod2: the light ``--dead-pod-load`` keeps that effect small.)
3. Moves: a writer POSTs a uniquely titled draft article through the router's write
   API every ``--write-interval`` s and a reader GETs acme's home page and an article
   every ``--read-interval`` s, while ``manage.py tenants move acme --to podN`` runs
   ``--moves`` times, pod1 -> pod2, pod2 -> pod1, ..., ``--settle-seconds`` apart. A
   503 with Retry-After is a refused write: the same article is sent again after
   ``--retry-interval`` s (not after Retry-After, so the end of the freeze is seen to
   that); any other answer but 2xx is a write error (a 409 among them would say a
   refused write was stored); any read answered other than 200 is a failed read.
   Per move: move_total, the subprocess's wall time (Django's start-up included; the
   command's own figure is in the record), and the write freeze as the writer saw
   it, from the first refused write to the first accepted one after it (a move
   during which no write was refused counts the pause the command reports, and the
   run says so). Afterwards every title answered 2xx must be in acme's schema on
   the pod the directory names: the ones missing are lost writes.

Last line: ``RESULT move_freeze_p50_s=X move_total_p50_s=X lost_writes=X
failed_reads=X router_rps_ratio=X router_rps_ratio_shared_cpu=X
other_pod_p99_ratio_pod_down=X`` (only when the run
is valid, else ``INVALID <reasons>``); the run is on record under
``bench/results/pods/`` (bench.common.Run). Goals: lost_writes = 0, failed_reads = 0,
move_freeze_p50_s <= 2, router_rps_ratio >= 0.9, other_pod_p99_ratio_pod_down <= 1.25.

Usage: flock /tmp/bench.lock make bench-pods  (options: python bench/pods/run.py
--help)
"""

import argparse
import http.client
import json
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import psycopg

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    Run,
    bootstrap_median,
    bootstrap_pooled_ratio,
    bootstrap_ratio,
    calibrated_rate,
    cpu_of,
    describe_host,
    host_counters,
    host_delta,
    interleaved,
    interval,
    median,
    out,
    percentile,
    process_trees,
)
from bench.loadgen import (  # noqa: E402
    OpenLoopResult,
    Schedule,
    Target,
    WrkResult,
    open_loop,
    wrk_closed_loop,
)
from tests.pods import BackgroundThreads, TwoPods, start_two_pods  # noqa: E402

MOVING = "acme"  # starts on pod1
NEIGHBOUR = "globex"  # on pod2 throughout
RAISED_LIMITS = (
    "public_reads_per_minute",
    "public_reads_per_client_per_minute",
    "api_reads_per_minute",
    "api_writes_per_minute",
    "concurrent_requests",
)
# far above anything this run sends, far below the plans' MAX_LIMIT
RAISED_TO = 100_000_000
# pod down: probes of the machine's busy share under the phase's load (at most this
# many, each this long), and how far above the asked share the last may end
HEADROOM_PROBES = 4
HEADROOM_PROBE_SECONDS = 4
HEADROOM_SLACK = 0.05
PAUSE_REPORTED = re.compile(r"writes were paused ([0-9.]+) s")
DONE_REPORTED = re.compile(r"\[\s*([0-9.]+) s\] done")


def host(slug: str) -> str:
    return f"{slug}.localhost"


def request(port, method, path, host_name, *, body=None, headers=None, timeout=30):
    """One request on a connection of its own: (status, headers, body); status 0
    when no answer came."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        all_headers = {"Host": host_name, **(headers or {})}
        if body is not None:
            all_headers["Content-Type"] = "application/json"
            body = json.dumps(body)
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        content = response.read()
        return (
            response.status,
            {key.lower(): value for key, value in response.getheaders()},
            content,
        )
    except (OSError, http.client.HTTPException):
        return 0, {}, b""
    finally:
        conn.close()


# --- set-up ---------------------------------------------------------------------------


def plan_of(pods: TwoPods, pod: str, slug: str) -> str:
    with psycopg.connect(pods.pods[pod].database_url) as conn:
        return conn.execute(
            "SELECT p.name FROM public.tenants_tenant t JOIN public.tenants_plan p "
            "ON p.id = t.plan_id WHERE t.schema_name = %s",
            [slug],
        ).fetchone()[0]


def raise_limits(pods: TwoPods, run: Run) -> list[str]:
    """The plans of both tenants with rate and concurrency limits no load here
    reaches, changed on pod1 and written through to pod2 by the product."""
    plans = sorted({plan_of(pods, "pod1", MOVING), plan_of(pods, "pod2", NEIGHBOUR)})
    limits = []
    for field in RAISED_LIMITS:
        limits += ["--limit", f"{field}={RAISED_TO}"]
    for plan in plans:
        done = pods.manage("pod1", "plans", "update", plan, *limits)
        if done.returncode != 0:
            raise RuntimeError(f"plans update {plan} failed: {done.stderr.strip()}")
    columns = ", ".join(RAISED_LIMITS)
    for pod, stack in pods.pods.items():
        with psycopg.connect(stack.database_url) as conn:
            rows = conn.execute(
                f"SELECT name, {columns} FROM public.tenants_plan WHERE name = ANY(%s)",
                [plans],
            ).fetchall()
        run.check(
            len(rows) == len(plans)
            and all(value == RAISED_TO for row in rows for value in row[1:]),
            f"the raised limits of {plans} did not reach {pod}: {rows}",
        )
    # every process re-reads its host map (with the plans) within 0.5 s
    time.sleep(1)
    return plans


def add_pages(pods: TwoPods, pod: str, slug: str, count: int) -> int:
    """Live ArticlePages under the tenant's home page until it has ``count`` pages
    (the plan quota's count); returns the count."""
    script = (
        "import datetime\n"
        "from django_tenants.utils import schema_context\n"
        "from wagtail.models import Site\n"
        "from content.models import ArticlePage\n"
        "from tenants.tariffs.quotas import page_count\n"
        f"with schema_context({slug!r}):\n"
        "    home = Site.objects.get(is_default_site=True).root_page.specific\n"
        f"    for number in range(page_count(), {count}):\n"
        "        home.add_child(instance=ArticlePage(\n"
        "            title=f'Archive article {number}',\n"
        "            slug=f'archive-{number}',\n"
        "            intro='From the archive.',\n"
        "            publication_date=datetime.date(2020, 1, 1),\n"
        "            body=[('paragraph', f'<p>Archived text number {number}.</p>')],\n"
        "        ))\n"
        "    print(page_count())\n"
    )
    done = pods.manage(pod, "shell", "-c", script, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"adding pages to {slug} failed: {done.stderr.strip()}")
    return int(done.stdout.strip().splitlines()[-1])


def page_paths(port: int, slug: str, *, articles: int = 3) -> list[str]:
    """The tenant's home page and the first ``articles`` articles it links to, each
    answering 200."""
    status, _, body = request(port, "GET", "/", host(slug))
    if status != 200:
        raise RuntimeError(f"{slug}'s home page answered {status}")
    found = []
    for path in re.findall(r'href="(?:https?://[^/"]+)?(/[^"]*)"', body.decode()):
        if path == "/" or path in found:
            continue
        if path.startswith(("/static/", "/media/", "/admin/", "/search/", "/api/")):
            continue
        if request(port, "GET", path, host(slug))[0] == 200:
            found.append(path)
        if len(found) == articles:
            break
    if not found:
        raise RuntimeError(f"{slug}'s home page links to no article")
    return ["/", *found]


def warm(port: int, slug: str, paths: list[str], repeat: int = 6) -> None:
    """Each page cached, each worker's per-tenant caches filled."""
    for _ in range(repeat):
        for path in paths:
            request(port, "GET", path, host(slug))


# --- 1. the router's cost -------------------------------------------------------------


@dataclass
class Round:
    """One wrk round: answers per second (2xx), latencies, answers that were not."""

    ok_rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    not_ok: int
    statuses: dict[int, int]


def as_round(result: WrkResult) -> Round:
    return Round(
        ok_rps=result.ok_rps,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        requests=result.requests,
        not_ok=result.not_ok,
        statuses=result.statuses,
    )


def _haproxy(pods: TwoPods) -> list[psutil.Process]:
    """The router's HAProxy processes (master and worker)."""
    return [
        process
        for process in psutil.Process(pods.router.pid).children(recursive=True)
        if process.name() == "haproxy"
    ]


@contextmanager
def router_on_its_own_cpu(pods: TwoPods) -> Iterator[None]:
    """Pod2's pool on one CPU, HAProxy and the load generator (this process's
    children) on the other: the router as deployed, on a machine of its own, so its
    requests/s over direct is what it costs the pool, not what it takes from the
    pool's CPU on a shared 2-core machine (measured too, as the shared-CPU figure).
    Everything is put back on every CPU afterwards."""
    cpus = sorted(os.sched_getaffinity(0))
    pool, edge = process_trees([pods.pools["pod2"].pid])(), _haproxy(pods)
    placed = [(process, cpus[:1]) for process in pool]
    placed += [(process, cpus[1:2]) for process in edge]
    try:
        for process, on in placed:
            process.cpu_affinity(on)
        os.sched_setaffinity(0, cpus[1:2])
        yield
    finally:
        os.sched_setaffinity(0, cpus)
        # listed again: a worker forked while pinned (a recycled one) inherited the
        # pin and must get every CPU back too
        for process in {*process_trees([pods.pools["pod2"].pid])(), *_haproxy(pods)}:
            try:
                process.cpu_affinity(cpus)
            except psutil.NoSuchProcess:
                pass


ROUTER_SETUPS = {
    # name: (through the router, on separate CPUs)
    "direct": (False, True),
    "router": (True, True),
    "direct, shared CPU": (False, False),
    "router, shared CPU": (True, False),
}


def router_cost(pods: TwoPods, args, run: Run, paths: list[str]) -> dict:
    targets = [Target(host(NEIGHBOUR), path) for path in paths]
    run.check(
        len(os.sched_getaffinity(0)) >= 2,
        "router cost: needs 2 CPUs to give the router one of its own",
    )
    out(
        f"== router cost: wrk, {args.connections} connections, {args.rounds} "
        f"interleaved rounds of {args.seconds:g} s on {len(paths)} cached pages of "
        f"{NEIGHBOUR}, straight to pod2's pool and through HAProxy; the pool on one "
        "CPU and HAProxy with wrk on the other, and all sharing both CPUs"
    )
    router_cpu: list[tuple[float, int]] = []

    def load(name: str, seconds: float) -> Round:
        routed, split = ROUTER_SETUPS[name]
        port = pods.router_port if routed else pods.web_ports["pod2"]
        edge = _haproxy(pods)
        edge_cpu = cpu_of(lambda: edge)
        with router_on_its_own_cpu(pods) if split else nullcontext():
            cpu_before = edge_cpu()
            measured = as_round(
                wrk_closed_loop(
                    port, targets, seconds=seconds, connections=args.connections
                )
            )
            if routed and measured.requests:
                router_cpu.append((edge_cpu() - cpu_before, measured.requests))
        out(
            f"   {name:<18} {measured.ok_rps:7.0f} req/s  p50 {measured.p50_ms:6.2f} "
            f"ms  p99 {measured.p99_ms:6.2f} ms  not 2xx {measured.not_ok}"
        )
        return measured

    for name in ROUTER_SETUPS:
        load(name, 2)  # warm-up, not counted
    router_cpu.clear()
    rounds = interleaved(
        {name: (lambda name=name: load(name, args.seconds)) for name in ROUTER_SETUPS},
        rounds=args.rounds,
    )
    for name, measured in rounds.items():
        bad = sum(r.not_ok for r in measured)
        run.check(bad == 0, f"router cost, {name}: {bad} answers other than 2xx")

    def rps(name: str) -> list[float]:
        return [r.ok_rps for r in rounds[name]]

    ratio = bootstrap_ratio(rps("router"), rps("direct"))
    shared = bootstrap_ratio(rps("router, shared CPU"), rps("direct, shared CPU"))
    medians = {name: median(rps(name)) for name in rounds}
    cpu_us = 1e6 * sum(c for c, _ in router_cpu) / max(1, sum(n for _, n in router_cpu))
    out(
        f"   router on its own CPU: direct {medians['direct']:.0f} req/s, router "
        f"{medians['router']:.0f} req/s; ratio {ratio[0]:.3f} (95 % bootstrap "
        f"interval {ratio[1]:.3f}-{ratio[2]:.3f})"
    )
    out(
        f"   sharing both CPUs: direct {medians['direct, shared CPU']:.0f} req/s, "
        f"router {medians['router, shared CPU']:.0f} req/s; ratio {shared[0]:.3f} "
        f"({shared[1]:.3f}-{shared[2]:.3f}); HAProxy's CPU {cpu_us:.0f} us per request"
    )
    return {
        "paths": paths,
        "connections": args.connections,
        "median_rps": medians,
        "ratio": interval(ratio),
        "ratio_shared_cpu": interval(shared),
        "router_cpu_us_per_request": cpu_us,
        "rounds": {name: [asdict(r) for r in m] for name, m in rounds.items()},
    }


# --- 2. a dead pod's neighbours -------------------------------------------------------


def kill_pool(pods: TwoPods, pod: str) -> int:
    """SIGKILL the pool's gunicorn master and its workers (started by TwoPods)."""
    pool = pods.pools[pod]
    try:
        processes = [psutil.Process(pool.pid)]
        processes += processes[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    for process in processes:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    pool.wait(10)
    psutil.wait_procs(processes, timeout=10)
    return len(processes)


def wait_served(pods: TwoPods, slug: str, timeout: float = 60) -> float:
    started = time.monotonic()
    while request(pods.router_port, "GET", "/", host(slug), timeout=5)[0] != 200:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"the router does not serve {slug} again")
        time.sleep(0.2)
    return time.monotonic() - started


@dataclass
class Block:
    """One block of open-loop load: the neighbour's latencies (ms, 200s), its other
    answers, and the dead pod's tenant's answers by status."""

    neighbour_ms: list[float]
    neighbour_not_200: dict[int, int]
    moving_statuses: dict[int, int]
    results: list[OpenLoopResult]
    # steal, I/O wait and checkpoints during the block (bench.common.host_delta)
    host: dict


def statuses_of(result: OpenLoopResult) -> dict[int, int]:
    counted: dict[int, int] = {}
    for status in result.statuses:
        counted[status] = counted.get(status, 0) + 1
    return counted


def pod_down_schedules(pods: TwoPods, paths, rate: float, dead_rate: float):
    """The pod-down phase's open-loop load: globex at ``rate``, acme at
    ``dead_rate``, through the router."""
    return [
        Schedule(
            host=host(NEIGHBOUR),
            rate=rate,
            paths=tuple(paths[NEIGHBOUR]),
            port=pods.router_port,
            connections=16,
        ),
        Schedule(
            host=host(MOVING),
            rate=dead_rate,
            paths=tuple(paths[MOVING]),
            port=pods.router_port,
            connections=8,
        ),
    ]


def with_headroom(
    pods: TwoPods, args, paths, rate: float, dead_rate: float
) -> tuple[float, float, list[dict]]:
    """The rates lowered, in proportion, until the whole machine is at most
    ``args.max_busy`` busy under them, from probes of ``HEADROOM_PROBE_SECONDS``
    (not counted), after a warm-up of 2 s.

    Client, router and both pods share this machine's cores, and the open-loop
    client (a Python process, a connection per request) costs far more CPU per
    request than wrk, with which the capacity was measured: once the pods answered
    from memory the capacity doubled, half of it kept the machine 80-90 % busy, and
    any other work (a restarted pool warming up) queued the open loop for seconds
    in either condition. The phase measures one pod's failure, not a saturated
    machine: it runs where the valid runs before ran (55-70 % busy)."""
    # spawning the client processes and their first requests, not counted
    open_loop(
        pods.router_port, pod_down_schedules(pods, paths, rate, dead_rate), seconds=2
    )
    probes = []
    for _ in range(HEADROOM_PROBES):
        before = host_counters()
        open_loop(
            pods.router_port,
            pod_down_schedules(pods, paths, rate, dead_rate),
            seconds=HEADROOM_PROBE_SECONDS,
        )
        busy = host_delta(before, host_counters())["busy_share"]
        probes.append({"rate": rate, "dead_pod_tenant_rate": dead_rate, "busy": busy})
        if busy <= args.max_busy:
            break
        scale = args.max_busy / busy
        rate, dead_rate = rate * scale, dead_rate * scale
    return rate, dead_rate, probes


def pod_down(pods: TwoPods, args, run: Run, capacity: float, paths) -> dict:
    asked = calibrated_rate(capacity, fraction=args.load)
    asked_dead = calibrated_rate(capacity, fraction=args.dead_pod_load)
    rate, dead_rate, probes = with_headroom(pods, args, paths, asked, asked_dead)
    out(
        "   headroom probes (rate, machine busy): "
        + ", ".join(f"{p['rate']:.0f} req/s {p['busy']:.0%}" for p in probes)
    )
    run.check(
        probes[-1]["busy"] <= args.max_busy + HEADROOM_SLACK,
        f"pod down: the machine stayed {probes[-1]['busy']:.0%} busy at "
        f"{probes[-1]['rate']:.0f} req/s after {len(probes)} probes (at most "
        f"{args.max_busy:.0%} asked)",
    )
    schedules = pod_down_schedules(pods, paths, rate, dead_rate)
    out(
        f"== pod down: open loop through the router, {NEIGHBOUR} (pod2) at "
        f"{rate:.0f} req/s ({args.load:g} x {capacity:.0f} = {asked:.0f}, lowered "
        f"to keep the machine <= {args.max_busy:.0%} busy), {MOVING} (pod1) at "
        f"{dead_rate:.0f} req/s; {args.down_rounds} interleaved rounds of "
        f"{args.down_seconds:g} s with pod1 up and with its pool killed"
    )
    restarts: list[float] = []

    def block(name: str) -> Block:
        host_before = host_counters()
        results = open_loop(pods.router_port, schedules, seconds=args.down_seconds)
        host_use = host_delta(host_before, host_counters())
        neighbour, moving = results
        measured = Block(
            neighbour_ms=neighbour.latencies_of(200),
            neighbour_not_200={
                s: n for s, n in statuses_of(neighbour).items() if s != 200
            },
            moving_statuses=statuses_of(moving),
            results=results,
            host=host_use,
        )
        out(
            f"   {name:<4} {NEIGHBOUR}: {len(measured.neighbour_ms)} answered 200, "
            f"p50 {percentile(measured.neighbour_ms, 50):.1f} ms, p99 "
            f"{percentile(measured.neighbour_ms, 99):.1f} ms, other "
            f"{measured.neighbour_not_200 or 0}; {MOVING}: {measured.moving_statuses}; "
            f"host: {describe_host([host_use])}"
        )
        return measured

    def up() -> Block:
        return block("up")

    def down() -> Block:
        killed = kill_pool(pods, "pod1")
        out(f"   pod1's pool killed ({killed} processes)")
        try:
            return block("down")
        finally:
            began = time.monotonic()
            pods.start_pool("pod1")
            wait_served(pods, MOVING)
            restarts.append(time.monotonic() - began)
            warm(pods.router_port, MOVING, paths[MOVING])
            out(f"   pod1's pool started again, serving after {restarts[-1]:.1f} s")

    blocks = interleaved({"up": up, "down": down}, rounds=args.down_rounds)
    for name, rounds in blocks.items():
        for index, measured in enumerate(rounds):
            for result in measured.results:
                run.check_open_loop(
                    f"pod down, {name}, round {index + 1}, {result.schedule.host}",
                    result,
                )
            run.check(
                not measured.neighbour_not_200,
                f"pod down, {name}, round {index + 1}: {NEIGHBOUR} (pod2) answered "
                f"{measured.neighbour_not_200}",
            )
            if name == "up":
                other = {s: n for s, n in measured.moving_statuses.items() if s != 200}
                run.check(
                    not other,
                    f"pod down, up, round {index + 1}: {MOVING} (pod1 up) answered "
                    f"{other}",
                )
    groups = {name: [m.neighbour_ms for m in rounds] for name, rounds in blocks.items()}
    samples = {name: sum(len(r) for r in rounds) for name, rounds in groups.items()}
    for name, rounds in groups.items():
        for index, block_ms in enumerate(rounds):
            run.check_p99(
                f"pod down, {NEIGHBOUR} with pod1 {name}, round {index + 1}",
                len(block_ms),
            )
    # each round's own ratio (its two blocks ran side by side), then their median
    per_round = [
        percentile(down, 99) / percentile(up, 99)
        for up, down in zip(groups["up"], groups["down"], strict=True)
    ]
    ratio = bootstrap_median(per_round)
    pooled_ratio = bootstrap_pooled_ratio(groups["down"], groups["up"])
    pooled = {name: [ms for r in g for ms in r] for name, g in groups.items()}
    p99 = {name: percentile(values, 99) for name, values in pooled.items()}
    out(
        f"   {NEIGHBOUR} p99 per round, down over up: "
        f"{', '.join(f'{r:.2f}' for r in per_round)}; median {ratio[0]:.3f} (95 % "
        f"bootstrap interval {ratio[1]:.3f}-{ratio[2]:.3f})"
    )
    out(
        f"   pooled: p99 pod1 up {p99['up']:.1f} ms, pod1 down {p99['down']:.1f} ms; "
        f"ratio {pooled_ratio[0]:.3f} (block bootstrap {pooled_ratio[1]:.3f}-"
        f"{pooled_ratio[2]:.3f})"
    )
    dead_answers: dict[int, int] = {}
    for measured in blocks["down"]:
        for status, count in measured.moving_statuses.items():
            dead_answers[status] = dead_answers.get(status, 0) + count
    return {
        "capacity_rps": capacity,
        "asked_rate": asked,
        "headroom_probes": probes,
        "neighbour_rate": rate,
        "dead_pod_tenant_rate": dead_rate,
        "achieved_rates": {
            name: [
                [round(result.achieved_rate, 1) for result in m.results] for m in rounds
            ]
            for name, rounds in blocks.items()
        },
        "samples": samples,
        "p50_ms": {name: percentile(values, 50) for name, values in pooled.items()},
        "p99_ms": p99,
        "ratio": interval(ratio),
        "ratio_per_round": per_round,
        "pooled_ratio": interval(pooled_ratio),
        "dead_pod_tenant_answers_while_down": dead_answers,
        "restart_seconds": restarts,
        "rounds": {
            name: [
                {
                    "neighbour_200": len(m.neighbour_ms),
                    "neighbour_p99_ms": percentile(m.neighbour_ms, 99),
                    "neighbour_not_200": m.neighbour_not_200,
                    "moving_statuses": m.moving_statuses,
                    "host": m.host,
                }
                for m in rounds
            ]
            for name, rounds in blocks.items()
        },
    }


# --- 3. live moves under load ---------------------------------------------------------


@dataclass
class Write:
    sent: float
    answered: float
    status: int
    retry_after: str
    title: str

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    @property
    def refused(self) -> bool:
        """Refused for the freeze: 503 with Retry-After, to be sent again."""
        return self.status == 503 and bool(self.retry_after)


@dataclass
class Read:
    answered: float
    status: int
    path: str
    seconds: float


class MoveTraffic(BackgroundThreads):
    """A writer and a reader through the router for the whole move phase; every
    answer is kept with the moment it came."""

    def __init__(self, port: int, token: str, paths: list[str], args) -> None:
        self.port, self.token, self.paths = port, token, paths
        self.write_interval = args.write_interval
        self.retry_interval = args.retry_interval
        self.read_interval = args.read_interval
        self.run_id = uuid.uuid4().hex[:8]
        self.writes: list[Write] = []
        self.reads: list[Read] = []
        super().__init__(self._write, self._read)

    def _write(self) -> None:
        """A new article every ``write_interval``; a refused one (503 with
        Retry-After) sent again, same title, after ``retry_interval``: a client
        that wants its change through, and sees the freeze end within that."""
        number = 0
        title = ""
        while not self.stop.is_set():
            if not self.writes or not self.writes[-1].refused:
                number += 1
                title = f"Pods bench {self.run_id} {number}"
            sent = time.monotonic()
            status, headers, _ = request(
                self.port,
                "POST",
                "/api/v2/articles/",
                host(MOVING),
                # a draft: publishing would purge the page cache the reader reads
                body={"title": title, "text": "Written during a move."},
                headers={"Authorization": f"Bearer {self.token}"},
            )
            self.writes.append(
                Write(
                    sent=sent,
                    answered=time.monotonic(),
                    status=status,
                    retry_after=headers.get("retry-after", ""),
                    title=title,
                )
            )
            refused = self.writes[-1].refused
            self.stop.wait(self.retry_interval if refused else self.write_interval)

    def _read(self) -> None:
        number = 0
        while not self.stop.is_set():
            path = self.paths[number % len(self.paths)]
            number += 1
            began = time.monotonic()
            status = request(self.port, "GET", path, host(MOVING))[0]
            answered = time.monotonic()
            self.reads.append(Read(answered, status, path, answered - began))
            # the other pod's tenant read too, so that the pod a move goes to is
            # busy as in production (its workers check their host map while the
            # move switches); not counted
            request(self.port, "GET", "/", host(NEIGHBOUR))
            self.stop.wait(self.read_interval)


def freeze_window(writes: list[Write], start: float, end: float) -> float | None:
    """From the first write refused in [start, end) to the first accepted after it,
    as the writer saw them (answer times); None when none was refused."""
    refused = [w for w in writes if w.refused and start <= w.answered < end]
    if not refused:
        return None
    first = refused[0].answered
    accepted = [w.answered for w in writes if w.accepted and w.answered > first]
    return (min(accepted) - first) if accepted else float("nan")


def titles_on(pods: TwoPods, pod: str, slug: str, prefix: str) -> set[str]:
    with psycopg.connect(pods.pods[pod].database_url) as conn:
        return {
            row[0]
            for row in conn.execute(
                f'SELECT title FROM "{slug}".wagtailcore_page WHERE title LIKE %s',
                [prefix + "%"],
            )
        }


def pod_holding(pods: TwoPods, slug: str) -> str:
    with psycopg.connect(pods.directory_url) as conn:
        return conn.execute(
            "SELECT pod FROM cms_directory.tenants WHERE slug = %s", [slug]
        ).fetchone()[0]


def moves(pods: TwoPods, args, run: Run, token: str, paths: list[str]) -> dict:
    out(
        f"== moves: {args.moves} moves of {MOVING} between pod1 and pod2, a write "
        f"every {args.write_interval:g} s and a read every {args.read_interval:g} s "
        "through the router"
    )
    done: list[dict] = []
    source = pod_holding(pods, MOVING)
    with MoveTraffic(pods.router_port, token, paths, args) as traffic:
        time.sleep(args.settle_seconds)
        for index in range(args.moves):
            target = "pod2" if source == "pod1" else "pod1"
            began = time.monotonic()
            result = pods.manage(
                source, "tenants", "move", MOVING, "--to", target, timeout=900
            )
            ended = time.monotonic()
            pause = PAUSE_REPORTED.search(result.stdout)
            total = DONE_REPORTED.search(result.stdout)
            moved = result.returncode == 0 and (
                f"Moved {MOVING} from {source} to {target}" in result.stdout
            )
            done.append(
                {
                    "source": source,
                    "target": target,
                    "began": began,
                    "seconds": ended - began,
                    "exit_code": result.returncode,
                    "reported_pause_s": float(pause.group(1)) if pause else None,
                    "reported_total_s": float(total.group(1)) if total else None,
                }
            )
            out(
                f"   move {index + 1}: {source} -> {target} in {ended - began:.1f} s "
                f"(the command: writes paused "
                f"{done[-1]['reported_pause_s']} s, done at "
                f"{done[-1]['reported_total_s']} s)"
            )
            if not run.check(
                moved,
                f"move {index + 1} ({source} -> {target}) failed (exit "
                f"{result.returncode}): {(result.stderr or result.stdout)[-400:]}",
            ):
                break
            source = target
            time.sleep(args.settle_seconds)
    stopped = time.monotonic()
    # times in the record: seconds after the first move began
    origin = done[0]["began"] if done else stopped

    for index, move in enumerate(done):
        end = done[index + 1]["began"] if index + 1 < len(done) else stopped
        start = move["began"]
        window = freeze_window(traffic.writes, start, end)
        move["writes"] = sum(1 for w in traffic.writes if start <= w.sent < end)
        move["refused_writes"] = sum(
            1 for w in traffic.writes if w.refused and start <= w.answered < end
        )
        move["failed_reads"] = sum(
            1 for r in traffic.reads if r.status != 200 and start <= r.answered < end
        )
        if window is not None:
            move["freeze_s"], move["freeze_from"] = window, "writer"
        else:
            move["freeze_s"] = move["reported_pause_s"] or 0.0
            move["freeze_from"] = "reported by the command (no write was refused)"
            run.note(
                f"move {index + 1}: no write was refused; its freeze is the pause "
                f"the command reported ({move['freeze_s']} s)"
            )
        run.check(
            move["writes"] > 0, f"move {index + 1}: the writer sent nothing meanwhile"
        )

    holder = pod_holding(pods, MOVING)
    prefix = f"Pods bench {traffic.run_id} "
    stored = titles_on(pods, holder, MOVING, prefix)
    acknowledged = [w.title for w in traffic.writes if w.accepted]
    lost = [title for title in acknowledged if title not in stored]
    write_errors = [w for w in traffic.writes if not w.accepted and not w.refused]
    failed_reads = [r for r in traffic.reads if r.status != 200]

    def count(statuses) -> dict[int, int]:
        counted: dict[int, int] = {}
        for status in statuses:
            counted[status] = counted.get(status, 0) + 1
        return counted

    out(
        f"   writes: {len(traffic.writes)} sent, {len(acknowledged)} acknowledged, "
        f"{sum(w.refused for w in traffic.writes)} refused (503 + Retry-After), "
        f"{len(write_errors)} other answers {count(w.status for w in write_errors)}; "
        f"lost {len(lost)} of the acknowledged (checked on {holder})"
    )
    out(
        f"   reads: {len(traffic.reads)}, failed {len(failed_reads)} "
        f"{count(r.status for r in failed_reads)}"
    )
    run.check(len(acknowledged) > 0, "no write was acknowledged")
    if write_errors:
        run.note(
            f"{len(write_errors)} writes answered neither 2xx nor 503 with "
            f"Retry-After: {count(w.status for w in write_errors)}"
        )
    for move in done:
        move["began"] = round(move["began"] - origin, 3)
    return {
        "moves": done,
        "freeze_s": [m["freeze_s"] for m in done],
        "total_s": [m["seconds"] for m in done],
        "writes": len(traffic.writes),
        "acknowledged_writes": len(acknowledged),
        "refused_writes": sum(w.refused for w in traffic.writes),
        "write_errors": count(w.status for w in write_errors),
        "lost_writes": len(lost),
        "lost_titles": lost[:20],
        "checked_on": holder,
        "reads": len(traffic.reads),
        "read_p99_ms": percentile([r.seconds * 1000 for r in traffic.reads], 99),
        "failed_reads": len(failed_reads),
        "failed_read_statuses": count(r.status for r in failed_reads),
        "failed_read_times": [
            [round(r.answered - origin, 3), r.status, r.path]
            for r in failed_reads[:100]
        ],
        "write_error_times": [
            [round(w.answered - origin, 3), w.status] for w in write_errors[:100]
        ],
    }


# --- the run --------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--pages", type=int, default=500, help="pages of the moving tenant (acme)"
    )
    parser.add_argument("--moves", type=int, default=5, help="moves, back and forth")
    parser.add_argument(
        "--write-interval",
        type=float,
        default=0.25,
        help="seconds between the writer's POSTs (acme's plan allows 300/min unless "
        "raised; this run raises it)",
    )
    parser.add_argument(
        "--retry-interval",
        type=float,
        default=0.05,
        help="seconds before the writer sends a refused write again (the end of "
        "the freeze is seen to this)",
    )
    parser.add_argument(
        "--read-interval",
        type=float,
        default=0.05,
        help="seconds between the reader's GETs",
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=3,
        help="traffic alone before the first move and after each",
    )
    parser.add_argument(
        "--rounds", type=int, default=8, help="router cost: interleaved wrk rounds"
    )
    parser.add_argument(
        "--seconds", type=float, default=5, help="router cost: seconds per wrk round"
    )
    parser.add_argument(
        "--connections", type=int, default=8, help="router cost: wrk connections"
    )
    parser.add_argument(
        "--load",
        type=float,
        default=0.5,
        help="pod down: globex's rate as a share of the router's measured capacity",
    )
    parser.add_argument(
        "--dead-pod-load",
        type=float,
        default=0.05,
        help="pod down: acme's rate (the dead pod's visitors), same unit",
    )
    parser.add_argument(
        "--max-busy",
        type=float,
        default=0.6,
        help="pod down: the rates are lowered until the whole machine (client, "
        "router, both pods) is at most this busy",
    )
    parser.add_argument(
        "--down-rounds",
        type=int,
        default=8,
        help="pod down: interleaved rounds (pod1 up, pod1 killed)",
    )
    parser.add_argument(
        "--down-seconds", type=float, default=10, help="pod down: seconds per block"
    )
    args = parser.parse_args()
    run = Run("pods", parser, args)

    began = time.monotonic()
    out("== starting two pods and the router (tests/pods.py)")
    pods = start_two_pods()
    figures: dict = {}
    try:
        out(
            f"   up in {time.monotonic() - began:.0f} s: pod1 (acme) on "
            f":{pods.web_ports['pod1']}, pod2 (globex) on :{pods.web_ports['pod2']}, "
            f"router on :{pods.router_port}"
        )
        figures["raised_plans"] = raise_limits(pods, run)
        out(
            f"   plans {figures['raised_plans']}: {', '.join(RAISED_LIMITS)} raised "
            f"to {RAISED_TO}"
        )
        figures["pages"] = add_pages(pods, "pod1", MOVING, args.pages)
        out(f"   {MOVING} has {figures['pages']} pages")
        run.check(
            figures["pages"] >= args.pages,
            f"{MOVING} has {figures['pages']} pages, not {args.pages}",
        )
        token = pods.pods["pod1"].api_token(MOVING)
        paths = {
            slug: page_paths(pods.router_port, slug) for slug in (MOVING, NEIGHBOUR)
        }
        for slug, slug_paths in paths.items():
            warm(pods.web_ports["pod1" if slug == MOVING else "pod2"], slug, slug_paths)
        figures["router_cost"] = router_cost(pods, args, run, paths[NEIGHBOUR])
        capacity = figures["router_cost"]["median_rps"]["router, shared CPU"]
        figures["pod_down"] = pod_down(pods, args, run, capacity, paths)
        figures["moves"] = moves(pods, args, run, token, paths[MOVING][:2])
    finally:
        out("== stopping the pods and the router")
        pods.close()

    moved = figures["moves"]
    freezes = [s for s in moved["freeze_s"] if s == s]  # NaN: never accepted again
    run.check(
        len(freezes) == args.moves,
        f"{len(freezes)} of {args.moves} moves completed with a measured freeze",
    )
    result = {
        "move_freeze_p50_s": round(median(freezes), 3),
        "move_total_p50_s": round(median(moved["total_s"]), 3),
        "lost_writes": moved["lost_writes"],
        "failed_reads": moved["failed_reads"],
        "router_rps_ratio": round(figures["router_cost"]["ratio"]["median"], 3),
        "router_rps_ratio_shared_cpu": round(
            figures["router_cost"]["ratio_shared_cpu"]["median"], 3
        ),
        "other_pod_p99_ratio_pod_down": round(
            figures["pod_down"]["ratio"]["median"], 3
        ),
    }
    out()
    out(f"{'move':<6}{'from':<7}{'to':<7}{'total s':>9}{'freeze s':>10}  freeze from")
    for index, move in enumerate(moved["moves"]):
        out(
            f"{index + 1:<6}{move['source']:<7}{move['target']:<7}"
            f"{move['seconds']:>9.2f}{move['freeze_s']:>10.2f}  {move['freeze_from']}"
        )
    out(f"minutes in all: {(time.monotonic() - began) / 60:.1f}")
    return run.finish(result, figures)


if __name__ == "__main__":
    sys.exit(main())
