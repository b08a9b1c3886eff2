"""Webhook delivery fairness: does one tenant's slow endpoint delay another tenant's
deliveries on the shared worker pool?

Runs in a database of its own (``<name>_bench_webhooks``, dropped and re-created) on
the configured PostgreSQL and Redis, with the product's workers for every step: the
publishing pool (prefork, ``--concurrency`` processes) and the delivery worker
(threads, ``--delivery-threads``, as `make up` and deploy/ run it), and one receiver in
this process (a threaded ``http.server`` on 127.0.0.1): tenant A's endpoint answers
after ``--slow-seconds`` (5 s), tenant B's at once. Steps:

1. idle: B publishes one page on an otherwise idle pool, ``--samples`` times one after
   the other (each waits for its delivery; median taken);
2. FIFO: A's ``--pages`` pages are published (their ``page.published`` events
   emitted in one transaction, one delivery each, sent as plain Celery tasks,
   ``deliver_webhook_fifo_task``, to the same delivery worker), then B publishes one
   page (a real publish);
3. fair: the same (B ``--samples`` times while A's backlog stands, median taken)
   through the webhooks lane (``tenants.jobs.lanes``: a fair queue of
   its own, round robin across tenants, at most the plan's ``webhook_concurrency``
   of a tenant's deliveries at once);
4. throughput: B sends ``--burst`` test events to its fast endpoint through the fair
   queue; deliveries per second from the first emit to the last arrival.

A's events are emitted rather than each page published one by one: on the loaded
machine a publish took ~3.6 s, slower than the slow endpoint drains them (4 workers
x 5 s), which hides the backlog this measures. B's latency runs from the start of
its publish (a new revision published in this process) to the receiver reading the
request. A FIFO step waits at most ``--fifo-timeout`` seconds for B (B sits behind
all of A's deliveries: hundreds of seconds); its ratio is then a lower bound, marked
``>=`` in the table and said above the RESULT line (whose values stay numbers).
Between steps the queues are emptied and A's undelivered events dropped. The steps
cannot alternate in rounds (the fair step needs A's backlog standing, the idle one
none), so each ratio's 95 % bootstrap interval resamples the steps' samples (ratio
of medians; none for a step of one sample, as FIFO's). Last line:
``RESULT delivery_fair_latency_ratio=X delivery_fifo_latency_ratio=X
deliveries_per_s=X delivery_fair_latency_ratio_ci_low=X
delivery_fair_latency_ratio_ci_high=X``.

Usage: make bench-webhooks  (options: python bench/webhooks/run.py -h)
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
from bench.common import REPO, Run, bootstrap_ratio, interval, out, use_bench_database

QUEUE = "bench-webhooks"
DELIVERY_QUEUE = "bench-webhooks-deliveries"
TENANTS = {"a": "wh_alpha", "b": "wh_bravo"}


class Receiver:
    """Arrival times of page ids (and test events) per path."""

    def __init__(self, slow_seconds: float) -> None:
        self.slow_seconds = slow_seconds
        self.lock = threading.Lock()
        self.arrivals: dict[str, list[tuple[float, dict]]] = {"/slow": [], "/fast": []}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:
                arrived = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.arrivals.setdefault(self.path, []).append(
                        (arrived, json.loads(body))
                    )
                if self.path == "/slow":
                    time.sleep(receiver.slow_seconds)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        from tests.integration import free_port

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 256
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def page_arrival(self, page_id: int, since: float) -> float | None:
        with self.lock:
            for arrived, payload in self.arrivals["/fast"]:
                page = payload.get("data", {}).get("page") or {}
                if page.get("id") == page_id and arrived >= since:
                    return arrived
        return None

    def count(self, path: str, since: float) -> tuple[int, float]:
        with self.lock:
            times = [t for t, _ in self.arrivals.get(path, []) if t >= since]
        return len(times), max(times, default=since)


def start_worker(
    log_path: Path, *, queue: str, pool: str, concurrency: int
) -> subprocess.Popen:
    from cms_project.devstack import celery_worker_command

    command = celery_worker_command(
        queues=[queue],
        pool=pool,
        concurrency=concurrency,
        name=f"{queue}@%h",
        loglevel="WARNING",
    )
    return subprocess.Popen(
        [*command, "--without-gossip", "--without-mingle"],
        cwd=REPO, env=dict(os.environ), stdout=log_path.open("a"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def make_pages(schema: str, count: int) -> list[int]:
    from django_tenants.utils import schema_context
    from wagtail.models import Site

    from content.models import ArticlePage

    ids = []
    with schema_context(schema):
        home = Site.objects.get(is_default_site=True).root_page
        for index in range(count):
            page = ArticlePage(title=f"Bench {index}", intro="x", live=False)
            home.add_child(instance=page)
            ids.append(page.pk)
    return ids


def publish(schema: str, ids: list[int], mode: str, *, events_only=False) -> None:
    """Publish each page (a new revision), or with ``events_only`` emit the
    ``page.published`` events of all of them in one transaction (as a subtree publish
    would); the webhook events go out through the fair queue, or in ``fifo`` mode as
    plain Celery tasks."""
    from django.db import transaction
    from django_tenants.utils import schema_context

    from content.integrations import webhooks
    from content.models import ArticlePage
    from content.tasks import deliver_webhook_fifo_task

    fair_queue_jobs = webhooks._queue

    def plain_celery(deliveries) -> None:
        pks = [delivery.pk for delivery in deliveries]
        transaction.on_commit(
            lambda: [
                deliver_webhook_fifo_task.apply_async(
                    kwargs={"delivery_id": pk}, queue=DELIVERY_QUEUE
                )
                for pk in pks
            ]
        )

    webhooks._queue = plain_celery if mode == "fifo" else fair_queue_jobs
    try:
        with schema_context(schema):
            if events_only:
                with transaction.atomic():
                    for page in ArticlePage.objects.filter(pk__in=ids):
                        webhooks.emit(
                            event="page.published", data=webhooks.page_data(page)
                        )
                return
            for page in ArticlePage.objects.filter(pk__in=ids):
                page.intro = f"revision {time.time()}"
                page.save_revision().publish()
    finally:
        webhooks._queue = fair_queue_jobs


def reset_queues() -> None:
    """Empty the broker queue and the fair queue, and drop undelivered events."""
    from django_tenants.utils import schema_context

    from cms_project.celery import app
    from content.integrations.models import WebhookDelivery
    from tenants.jobs import fair_queue

    with app.connection_for_write() as conn:
        for queue in (QUEUE, DELIVERY_QUEUE):
            conn.default_channel.queue_purge(queue)
    fair_queue.clear(queue=QUEUE)
    fair_queue.clear(queue=DELIVERY_QUEUE)
    for schema in TENANTS.values():
        with schema_context(schema):
            WebhookDelivery.objects.filter(status="queued").update(status="failed")


def wait_for_b(receiver: Receiver, page_id: int, since: float, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        arrived = receiver.page_arrival(page_id, since)
        if arrived is not None:
            return arrived
        time.sleep(0.02)
    return None


def run_step(
    mode, receiver, a_ids, b_id, *, timeout, settle, samples=1
) -> tuple[list[float], bool]:
    """A's pages (if any), then B's publishes one after the other (``samples``, each
    waiting for its delivery, all while A's backlog stands); B's latencies and whether
    all were measured (a timed-out one counts as the timeout and ends the step)."""
    if a_ids:
        publish(TENANTS["a"], a_ids, mode, events_only=True)
    latencies = []
    measured = True
    for _ in range(samples):
        b_started = time.time()
        publish(TENANTS["b"], [b_id], mode)
        arrived = wait_for_b(receiver, b_id, b_started, timeout)
        if arrived is None:
            latencies.append(timeout)
            measured = False
            break
        latencies.append(arrived - b_started)
    reset_queues()
    time.sleep(settle)  # deliveries in progress finish
    return latencies, measured


def throughput(receiver: Receiver, burst: int, timeout: float) -> float:
    from django_tenants.utils import schema_context

    from content.integrations import webhooks
    from content.integrations.models import WebhookEndpoint

    began = time.time()
    with schema_context(TENANTS["b"]):
        endpoint = WebhookEndpoint.objects.get(url=receiver.url("/fast"))
        for _ in range(burst):
            webhooks.send_test_event(endpoint=endpoint, actor=None)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count, last = receiver.count("/fast", began)
        if count >= burst:
            return burst / (last - began)
        time.sleep(0.05)
    count, last = receiver.count("/fast", began)
    return count / (time.time() - began)


def print_steps(steps: tuple[tuple[str, list[float], bool], ...]) -> dict:
    """Print each step's median and its ratio to the first step's (idle) with a 95 %
    bootstrap interval; return the intervals by step. A step not measured to the end
    (B not delivered in time) is a lower bound, marked ``>=``."""
    idle_s = steps[0][1]
    idle = statistics.median(idle_s)
    header = (
        f"{'step':<8}{'B publish-to-delivery s (median)':>34}{'x idle':>10}"
        f"{'95 % interval':>16}{'n':>4}{'min-max s':>16}"
    )
    out(header)
    out("-" * len(header))
    # each step's ratio to idle with its interval (idle's own: none)
    intervals = {steps[0][0]: (1.0, math.nan, math.nan)} | {
        name: bootstrap_ratio(samples, idle_s) for name, samples, _ in steps[1:]
    }
    for name, samples, measured in steps:
        value = statistics.median(samples)
        bound = "" if measured else ">="
        seconds = bound + format(value, ".3f")
        ratio = bound + format(value / idle, ".2f")
        _, low, high = intervals[name]
        around = "n/a" if math.isnan(low) else f"{low:.2f}-{high:.2f}"
        spread = f"{min(samples):.3f}-{max(samples):.3f}"
        out(
            f"{name:<8}{seconds:>34}{ratio:>10}{around:>16}{len(samples):>4}"
            f"{spread:>16}"
        )
    return intervals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=500, help="tenant A's publishes")
    parser.add_argument("--slow-seconds", type=float, default=5.0)
    parser.add_argument(
        "--concurrency", type=int, default=4, help="publishing worker processes"
    )
    parser.add_argument(
        "--delivery-threads",
        type=int,
        default=None,
        help="delivery worker threads (default: the product's, as `make up` runs)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=7,
        help="B's publishes on the idle pool and behind A's backlog (median taken)",
    )
    parser.add_argument("--burst", type=int, default=200, help="throughput step")
    parser.add_argument("--fifo-timeout", type=float, default=90)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    if min(args.pages, args.concurrency, args.samples, args.burst) < 1:
        parser.error("--pages, --concurrency, --samples, --burst must be >= 1")
    if args.delivery_threads is not None and args.delivery_threads < 1:
        parser.error("--delivery-threads must be >= 1")
    run = Run("webhooks", parser, args)
    if args.delivery_threads is None:
        from cms_project.devstack import WEBHOOK_WORKER_THREADS

        args.delivery_threads = WEBHOOK_WORKER_THREADS

    use_bench_database("bench_webhooks")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms_project.settings.dev")
    os.environ.update(
        CMS_JOBS_QUEUE=QUEUE,
        CMS_WEBHOOKS_QUEUE=DELIVERY_QUEUE,
        CMS_WEBHOOKS_ALLOW_HTTP="true",
        CMS_WEBHOOKS_ALLOW_PRIVATE="true",
        CMS_WEBHOOKS_TIMEOUT_SECONDS=str(int(args.slow_seconds) + 5),
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django_tenants.utils import schema_context

    from content.integrations import webhooks
    from tenants.models import Plan, Tenant
    from tenants.provisioning.creation import tenant_create
    from tenants.tariffs.features import plan_feature

    out("== setting up a fresh benchmark database (migrate, two tenants)")
    call_command("migrate", verbosity=0)
    call_command(
        "plans", "update", "enterprise",
        "--feature", "webhook_deliveries_per_hour=1000000",
    )  # fmt: skip
    receiver = Receiver(args.slow_seconds)
    for key, slug in TENANTS.items():
        tenant_create(
            slug=slug,
            name=slug,
            domains=[f"{slug.replace('_', '-')}.localhost"],
            plan="enterprise",
            admin_password="bench-password-1",
        )
        tenant = Tenant.objects.select_related("plan").get(schema_name=slug)
        with schema_context(slug):
            webhooks.endpoint_create(
                tenant=tenant,
                url=receiver.url("/slow" if key == "a" else "/fast"),
                events=["page.published", "webhook.test"],
            )
    reset_queues()
    out(f"== {args.pages} pages for tenant A, one for B")
    a_ids = make_pages(TENANTS["a"], args.pages)
    (b_id,) = make_pages(TENANTS["b"], 1)

    log = Path(tempfile.mkdtemp(prefix="bench-webhooks-")) / "worker.log"
    workers = [
        start_worker(log, queue=QUEUE, pool="prefork", concurrency=args.concurrency),
        start_worker(
            log,
            queue=DELIVERY_QUEUE,
            pool="threads",
            concurrency=args.delivery_threads,
        ),
    ]
    settle = args.slow_seconds + 1
    try:
        time.sleep(3)
        run_step("fair", receiver, [], b_id, timeout=args.timeout, settle=0.5)
        out(f"== idle pool: B alone, {args.samples} publishes (worker log {log})")
        idle_s, _ = run_step(
            "fair",
            receiver,
            [],
            b_id,
            timeout=args.timeout,
            settle=0.5,
            samples=args.samples,
        )
        out(f"== FIFO: A publishes {args.pages} (plain Celery deliveries), then B")
        fifo_s, fifo_measured = run_step(
            "fifo", receiver, a_ids, b_id, timeout=args.fifo_timeout, settle=settle
        )
        out(
            f"== fair: A publishes {args.pages} (fair queue), then B "
            f"{args.samples} times"
        )
        fair_s, fair_measured = run_step(
            "fair",
            receiver,
            a_ids,
            b_id,
            timeout=args.timeout,
            settle=settle,
            samples=args.samples,
        )
        out(f"== throughput: B sends {args.burst} test events (fair queue)")
        per_s = throughput(receiver, args.burst, args.timeout)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()

    out()
    cap = plan_feature(Plan.objects.get(name="enterprise"), "webhook_concurrency")
    out(
        f"delivery worker: {args.delivery_threads} threads (publishing pool: "
        f"{args.concurrency} processes); per-tenant cap: {cap} deliveries; A: "
        f"{args.pages} events to an endpoint answering after {args.slow_seconds:g} s"
    )
    intervals = print_steps(
        (
            ("idle", idle_s, True),
            ("FIFO", fifo_s, fifo_measured),
            ("fair", fair_s, fair_measured),
        )
    )
    out(f"fair-queue throughput (fast endpoint): {per_s:.1f} deliveries/s")
    for name, measured, limit in (
        ("FIFO", fifo_measured, args.fifo_timeout),
        ("fair", fair_measured, args.timeout),
    ):
        if not measured:
            run.note(f"{name}: B not delivered within {limit:g} s (a lower bound)")
    # RESULT values stay numbers; a lower bound is said in the notes above
    return run.finish(
        {
            "delivery_fair_latency_ratio": round(intervals["fair"][0], 3),
            "delivery_fifo_latency_ratio": round(intervals["FIFO"][0], 3),
            "deliveries_per_s": round(per_s, 1),
            "delivery_fair_latency_ratio_ci_low": round(intervals["fair"][1], 3),
            "delivery_fair_latency_ratio_ci_high": round(intervals["fair"][2], 3),
        },
        {
            "idle_s": idle_s,
            "fifo_s": fifo_s,
            "fair_s": fair_s,
            "fifo_measured": fifo_measured,
            "fair_measured": fair_measured,
            "ratio_intervals": {
                name.lower(): interval(intervals[name]) for name in ("FIFO", "fair")
            },
            "delivery_threads": args.delivery_threads,
            "webhook_concurrency": cap,
        },
    )


if __name__ == "__main__":
    sys.exit(main())
