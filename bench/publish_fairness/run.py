"""Publish fairness benchmark: does one tenant's backlog of publish jobs delay another
tenant's single job on the shared worker pool, and what does fair order cost?

Runs in a database of its own (``<name>_bench_fair``, dropped and re-created) on the
configured PostgreSQL and Redis, with one real Celery worker pool (prefork,
``--concurrency`` processes) used for every step of the same run:

1. idle: tenants B and C each publish one page on an otherwise idle pool (repeated,
   median taken) - the latency to beat;
2. FIFO: tenant A queues ``--jobs`` publishes as plain Celery tasks
   (``publish_page_task`` sent straight), then B and C one each;
3. fair: the same through the fair queue (``content.jobs``: per-tenant queues,
   round-robin tokens).

Steps 2 and 3 alternate for ``--rounds`` rounds (the machine may be shared: neither
mode always runs first); latencies are the rounds' medians, throughput is over all of
a mode's jobs. The pool is drained between steps.

Every job publishes a real new revision of a real page. A job's latency runs from the
moment it was queued to the page's ``last_published_at``; throughput is all jobs of a
step over the time from the first enqueue to the last publish. It prints a table,
writes ``bench/results/publish_fairness.png``; the last line is ``RESULT
fair_latency_ratio=X fifo_latency_ratio=X throughput_ratio_vs_fifo=X jobs_per_s=X``,
where a latency ratio is the worse of B and C over its idle latency.

Usage: make bench-publish_fairness  (options: python bench/publish_fairness/run.py -h)
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
from bench.common import REPO, RESULTS, Run, out, use_bench_database

QUEUE = "bench-fair"
TENANTS = {"a": "fa_alpha", "b": "fa_bravo", "c": "fa_charlie"}


def start_worker(concurrency: int, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, CMS_JOBS_QUEUE=QUEUE, LOG_LEVEL="WARNING")
    return subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "cms_project", "worker",
            "--pool", "prefork", "--concurrency", str(concurrency), "-Q", QUEUE,
            "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
        ],
        cwd=REPO, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def make_drafts(schema: str, count: int) -> list[int]:
    from django_tenants.utils import schema_context
    from wagtail.models import Site

    from content.models import ArticlePage

    ids = []
    with schema_context(schema):
        home = Site.objects.get(is_default_site=True).root_page
        for index in range(count):
            page = ArticlePage(title=f"Bench {index}", intro="x", live=False)
            home.add_child(instance=page)
            page.save_revision()
            ids.append(page.pk)
    return ids


def new_revisions(schema: str, ids: list[int]) -> None:
    """Give each page a new draft revision, so publishing it has work to do."""
    from django_tenants.utils import schema_context

    from content.models import ArticlePage

    with schema_context(schema):
        for page in ArticlePage.objects.filter(pk__in=ids):
            page.intro = f"revision {time.time()}"
            page.save_revision()


def published_at(schema: str, ids: list[int], since: float) -> dict[int, float]:
    """Pages published after ``since`` (epoch seconds), with the time."""
    from django_tenants.utils import schema_context
    from wagtail.models import Page

    with schema_context(schema):
        rows = Page.objects.filter(pk__in=ids, last_published_at__isnull=False)
        return {
            pk: when.timestamp()
            for pk, when in rows.values_list("pk", "last_published_at")
            if when.timestamp() >= since
        }


def wait_published(schema: str, ids: list[int], since: float, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        done = published_at(schema, ids, since)
        if len(done) == len(ids):
            return done
        if time.monotonic() > deadline:
            raise SystemExit(
                f"timed out: {len(done)}/{len(ids)} pages of {schema} published"
            )
        time.sleep(0.05)


def enqueue(mode: str, schema: str, ids: list[int]) -> float:
    """Queue publishes of ``ids`` in ``schema``; returns when they were queued."""
    from django_tenants.utils import schema_context

    from content.jobs import enqueue_jobs
    from content.tasks import publish_page_task

    with schema_context(schema):
        if mode == "fifo":
            for pk in ids:
                publish_page_task.apply_async((pk,), queue=QUEUE)
        else:
            enqueue_jobs(kind="publish", args_list=[{"page_id": pk} for pk in ids])
    return time.time()


def drain(timeout: float) -> None:
    """Wait until the pool has nothing queued (index updates of the previous step
    included), so a step never pays for the one before."""
    from cms_project.celery import app

    deadline = time.monotonic() + timeout
    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        while client.llen(QUEUE) and time.monotonic() < deadline:
            time.sleep(0.2)
    time.sleep(1.0)  # the tasks in progress


def run_step(mode: str, a_ids, b_ids, c_ids, timeout: float) -> dict:
    """A's backlog (if any), then B's and C's single job."""
    a, b, c = TENANTS["a"], TENANTS["b"], TENANTS["c"]
    for schema, ids in ((a, a_ids), (b, b_ids), (c, c_ids)):
        if ids:
            new_revisions(schema, ids)
    drain(timeout)
    began = time.time()
    if a_ids:
        enqueue(mode, a, a_ids)
    b_queued = enqueue(mode, b, b_ids)
    c_queued = enqueue(mode, c, c_ids)
    b_done = wait_published(b, b_ids, began, timeout)
    c_done = wait_published(c, c_ids, began, timeout)
    a_done = wait_published(a, a_ids, began, timeout) if a_ids else {}
    last = max([*a_done.values(), *b_done.values(), *c_done.values()])
    jobs = len(a_ids) + len(b_ids) + len(c_ids)
    a_before_b = sum(1 for t in a_done.values() if t < max(b_done.values()))
    return {
        "b_s": max(b_done.values()) - b_queued,
        "c_s": max(c_done.values()) - c_queued,
        "jobs": jobs,
        "seconds": last - began,
        "jobs_per_s": jobs / (last - began),
        "a_before_b": a_before_b,
    }


def combine(runs: list[dict]) -> dict:
    """Rounds of one mode: median latencies, throughput over all their jobs."""
    return {
        "b_s": statistics.median(run["b_s"] for run in runs),
        "c_s": statistics.median(run["c_s"] for run in runs),
        "a_before_b": max(run["a_before_b"] for run in runs),
        "jobs_per_s": sum(run["jobs"] for run in runs)
        / sum(run["seconds"] for run in runs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="tenant A's backlog")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--idle-runs", type=int, default=5)
    parser.add_argument(
        "--rounds", type=int, default=2, help="FIFO and fair steps, alternated"
    )
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    if min(args.jobs, args.concurrency, args.idle_runs, args.rounds) < 1:
        parser.error("--jobs, --concurrency, --idle-runs and --rounds must be >= 1")
    run = Run("publish_fairness", parser, args)

    use_bench_database("bench_fair")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms_project.settings.dev")
    os.environ["CMS_JOBS_QUEUE"] = QUEUE
    import django

    django.setup()
    from django.core.management import call_command

    from cms_project.celery import app
    from tenants.jobs import fair_queue
    from tenants.provisioning.creation import tenant_create

    out("== setting up a fresh benchmark database (migrate, three tenants)")
    call_command("migrate", verbosity=0)
    for slug in TENANTS.values():
        tenant_create(
            slug=slug,
            name=slug,
            domains=[f"{slug.replace('_', '-')}.localhost"],
            plan="enterprise",
            admin_password="bench-password-1",
        )
    fair_queue.clear()
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(QUEUE)
    out(f"== {args.jobs} draft pages for tenant A, one each for B and C")
    a_ids = make_drafts(TENANTS["a"], args.jobs)
    b_ids = make_drafts(TENANTS["b"], 1)
    c_ids = make_drafts(TENANTS["c"], 1)

    log = Path(tempfile.mkdtemp(prefix="bench-fair-")) / "worker.log"
    worker = start_worker(args.concurrency, log)
    try:
        time.sleep(3)
        run_step("fair", [], b_ids, c_ids, args.timeout)  # warm every process
        out(f"== idle pool: B and C alone, {args.idle_runs} runs (worker log {log})")
        idle_runs = [
            run_step("fair", [], b_ids, c_ids, args.timeout)
            for _ in range(args.idle_runs)
        ]
        idle = {
            key: statistics.median(run[key] for run in idle_runs)
            for key in ("b_s", "c_s")
        }
        steps: dict[str, list[dict]] = {"fifo": [], "fair": []}
        for round_ in range(args.rounds):
            # alternate the order, so neither mode always runs on a warmer pool
            order = ("fifo", "fair") if round_ % 2 == 0 else ("fair", "fifo")
            for mode in order:
                how = (
                    "plain Celery publishes"
                    if mode == "fifo"
                    else "jobs through the fair queue"
                )
                out(
                    f"== round {round_ + 1}, {mode}: A queues {args.jobs} {how}, "
                    "then B and C"
                )
                steps[mode].append(run_step(mode, a_ids, b_ids, c_ids, args.timeout))
        fifo, fair = combine(steps["fifo"]), combine(steps["fair"])
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()

    def ratio(step: dict) -> float:
        return max(step["b_s"] / idle["b_s"], step["c_s"] / idle["c_s"])

    figures = {
        "fair_latency_ratio": ratio(fair),
        "fifo_latency_ratio": ratio(fifo),
        "throughput_ratio_vs_fifo": fair["jobs_per_s"] / fifo["jobs_per_s"],
        "jobs_per_s": fair["jobs_per_s"],
    }
    out()
    out(f"pool: {args.concurrency} worker processes; A's backlog: {args.jobs} jobs")
    header = f"{'step':<8}{'B s':>9}{'C s':>9}{'A jobs before B':>17}{'jobs/s':>9}"
    out(header)
    out("-" * len(header))
    out(f"{'idle':<8}{idle['b_s']:>9.3f}{idle['c_s']:>9.3f}{'-':>17}{'-':>9}")
    for name, step in (("FIFO", fifo), ("fair", fair)):
        out(
            f"{name:<8}{step['b_s']:>9.3f}{step['c_s']:>9.3f}"
            f"{step['a_before_b']:>17}{step['jobs_per_s']:>9.1f}"
        )
    out()
    out(
        f"B/C latency vs idle: fair {figures['fair_latency_ratio']:.2f}x, "
        f"FIFO {figures['fifo_latency_ratio']:.2f}x (goal: fair within 2x)"
    )
    out(
        f"throughput fair vs FIFO: {figures['throughput_ratio_vs_fifo']:.3f} "
        "(goal: within 10%)"
    )
    plot(idle, fifo, fair)
    return run.finish(
        figures,
        {"idle": idle, "fifo": fifo, "fair": fair, "steps": steps, **figures},
    )


def plot(idle: dict, fifo: dict, fair: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    steps = ["idle", "FIFO", "fair"]
    width = 0.38
    positions = range(len(steps))
    left.bar(
        [p - width / 2 for p in positions],
        [idle["b_s"], fifo["b_s"], fair["b_s"]],
        width,
        label="tenant B",
    )
    left.bar(
        [p + width / 2 for p in positions],
        [idle["c_s"], fifo["c_s"], fair["c_s"]],
        width,
        label="tenant C",
    )
    left.set_yscale("log")
    left.set_xticks(list(positions), steps)
    left.set_ylabel("completion latency (s, log)")
    left.set_title("One job behind tenant A's backlog")
    left.legend()
    right.bar(["FIFO", "fair"], [fifo["jobs_per_s"], fair["jobs_per_s"]])
    right.set_ylabel("jobs per second")
    right.set_title("Pool throughput")
    fig.tight_layout()
    fig.savefig(RESULTS / "publish_fairness.png", dpi=100)


if __name__ == "__main__":
    sys.exit(main())
