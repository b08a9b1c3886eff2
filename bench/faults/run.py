"""Faults: what visitors see while a dependency hangs or dies, and after it returns.

A private stack (tests/private_stack.py: PostgreSQL and Redis of its own, migrated and
seeded; a 4-worker gunicorn pool; two Celery workers) under steady mixed load over
the demo tenants: cached pages, uncached pages (search) and API writes. In turn, for
``--fault-seconds`` each with a pause between: PostgreSQL hung (SIGSTOP of every
server process), Redis hung (SIGSTOP), Redis killed (SIGKILL, started again on its
data), a Celery worker killed mid-batch of publish jobs (a new worker started after).
Only processes this script started are signalled.

Per fault: cached-page success share and p99 during the fault, seconds until the
first fast (< 0.5 s) 503 for an uncached page, the p99 of all answers during the
fault, seconds from resuming until uncached pages are served again, and acknowledged
writes lost (API writes answered 201 missing afterwards; jobs of the batch not done).
The first row (``none``) is the same load before any fault: this machine's normal
latency, to read the others against.

Last line: ``RESULT pg_hang_cached_ok_share=X pg_hang_p99_s=X redis_hang_p99_s=X
recovery_s=X lost_writes=X``; the run is on record under ``bench/results/faults/``
(``bench.common.Run``), invalid when a figure could not be measured.
"""

import argparse
import http.client
import json
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from common import Run, out, percentile  # noqa: E402

from tests.private_stack import PrivateStack, _free_port  # noqa: E402

HOSTS = ["acme.localhost", "globex.localhost"]
FAST = 0.5


def request(port, method, path, host, body=None, headers=None, timeout=35):
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        all_headers = {"Host": host, **(headers or {})}
        if body is not None:
            all_headers["Content-Type"] = "application/json"
            body = json.dumps(body)
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        content = response.read()
        return response.status, content, time.perf_counter() - started
    except (OSError, http.client.HTTPException):
        return 0, b"", time.perf_counter() - started
    finally:
        conn.close()


class Load:
    """Client threads; every answer recorded as (time, kind, status, seconds)."""

    def __init__(self, port, *, readers, write_interval, tokens):
        self.port = port
        self.tokens = tokens  # host -> API token (the API takes no passwords)
        self.readers = readers
        self.write_interval = write_interval
        self.records = []
        self.acknowledged = []  # (host, page id)
        self.stopped = threading.Event()
        self.lock = threading.Lock()

    def record(self, kind, status, seconds):
        with self.lock:
            self.records.append((time.monotonic(), kind, status, seconds))

    def reader(self):
        rng = random.Random()
        while not self.stopped.is_set():
            host = rng.choice(HOSTS)
            if rng.random() < 0.7:
                status, _, seconds = request(self.port, "GET", "/", host)
                self.record("cached", status, seconds)
            else:
                query = rng.choice(["rockets", "campus", "news", "launch"])
                path = f"/search/?q={query}"
                status, _, seconds = request(self.port, "GET", path, host)
                self.record("uncached", status, seconds)
            time.sleep(0.02)

    def writer(self):
        while not self.stopped.is_set():
            host = random.choice(HOSTS)
            status, body, seconds = request(
                self.port,
                "POST",
                "/api/v2/articles/",
                host,
                # drafts: a publish purges the tenant's page cache, and cached
                # pages are what the benchmark watches
                body={"title": f"Fault bench {time.time_ns()}", "publish": False},
                headers={"Authorization": f"Bearer {self.tokens[host]}"},
            )
            self.record("write", status, seconds)
            if status == 201:
                self.acknowledged.append((host, json.loads(body)["id"]))
            time.sleep(self.write_interval)

    def start(self):
        self.threads = [
            threading.Thread(target=self.reader, daemon=True)
            for _ in range(self.readers)
        ] + [threading.Thread(target=self.writer, daemon=True)]
        for thread in self.threads:
            thread.start()

    def stop(self):
        self.stopped.set()
        for thread in self.threads:
            thread.join(40)

    def between(self, start, end, kind=None):
        return [
            r
            for r in self.records
            if start <= r[0] < end and (kind is None or r[1] == kind)
        ]


def summarize(load, name, start, resumed, end):
    during = load.between(start, resumed)
    cached = [r for r in during if r[1] == "cached"]
    uncached = [r for r in during if r[1] == "uncached"]
    first_fast_503 = next(
        (r[0] - start for r in uncached if r[2] == 503 and r[3] < FAST), None
    )
    after = load.between(resumed, end, "uncached")
    recovered = next((r[0] - resumed for r in after if r[2] == 200), None)
    statuses = {}
    for r in during:
        statuses[f"{r[1]}:{r[2]}"] = statuses.get(f"{r[1]}:{r[2]}", 0) + 1
    return {
        "fault": name,
        "answers": len(during),
        "cached_ok_share": (
            sum(1 for r in cached if r[2] == 200) / len(cached) if cached else None
        ),
        "cached_p99_s": percentile([r[3] for r in cached], 99),
        "first_fast_503_s": first_fast_503,
        "p99_s": percentile([r[3] for r in during], 99),
        "recovery_s": recovered,
        "statuses": statuses,
    }


def unlimited_plan():
    """Every tenant on a plan no load here reaches: the benchmark measures faults,
    not the tariff."""
    import django

    django.setup()
    from common import create_unlimited_plan

    from tenants.models import Plan, Tenant
    from tenants.registry.resolution import invalidate_tenant_map

    plan = Plan.objects.get(name=create_unlimited_plan())
    Tenant.objects.exclude(status=Tenant.Status.TEMPLATE).update(plan=plan)
    invalidate_tenant_map()


def batch_of_jobs(stack, count):
    """Queue ``count`` slow publish jobs per tenant (tests' job kind: the real
    publish, then a pause before it commits); returns their ids per schema."""
    from django_tenants.utils import schema_context

    from content.jobs import enqueue_jobs
    from content.models import ArticlePage

    ids = {}
    for schema in ("acme", "globex"):
        with schema_context(schema):
            pages = list(ArticlePage.objects.values_list("pk", flat=True)[:5])
            jobs = enqueue_jobs(
                kind="test.slow_publish",
                args_list=[
                    {"page_id": pages[i % len(pages)], "sleep": 0.5}
                    for i in range(count)
                ],
            )
            ids[schema] = [job.pk for job in jobs]
    return ids


def unfinished_jobs(ids):
    from django_tenants.utils import schema_context

    from content.models import BackgroundJob

    missing = 0
    for schema, job_ids in ids.items():
        with schema_context(schema):
            done = BackgroundJob.objects.filter(
                pk__in=job_ids, status=BackgroundJob.Status.DONE
            ).count()
            missing += len(job_ids) - done
    return missing


def lost_writes(load):
    from django_tenants.utils import schema_context
    from wagtail.models import Page

    lost = 0
    for host, page_id in load.acknowledged:
        with schema_context(host.split(".")[0]):
            lost += not Page.objects.filter(pk=page_id).exists()
    return lost


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fault-seconds", type=float, default=20)
    parser.add_argument("--pause-seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--readers", type=int, default=4, help="reading clients")
    parser.add_argument(
        "--write-interval", type=float, default=0.25, help="seconds between writes"
    )
    parser.add_argument("--jobs", type=int, default=20, help="jobs per tenant")
    args = parser.parse_args()
    run = Run("faults", parser, args)

    stack = PrivateStack()
    out(f"private stack in {stack.root}")
    results = []
    try:
        started = time.monotonic()
        stack.start()
        out(f"services up, migrated and seeded in {time.monotonic() - started:.0f} s")
        os.environ.update(stack.env())
        unlimited_plan()
        port = _free_port()
        stack.start_gunicorn(port, workers=args.workers)
        job_env = {"CMS_JOB_LEASE_SECONDS": "5"}
        workers = [
            stack.start_celery_worker("a", concurrency=2, **job_env),
            stack.start_celery_worker("b", concurrency=2, **job_env),
        ]
        for host in HOSTS:
            for _ in range(args.workers * 3):
                request(port, "GET", "/", host)
        tokens = {host: stack.api_token(host.split(".")[0]) for host in HOSTS}
        load = Load(
            port,
            readers=args.readers,
            write_interval=args.write_interval,
            tokens=tokens,
        )
        load.start()
        baseline_start = time.monotonic()
        time.sleep(args.pause_seconds)
        now = time.monotonic()
        results.append(summarize(load, "none", baseline_start, now, now))
        out(json.dumps(results[-1]))

        def fault(name, begin, end):
            out(f"fault: {name} for {args.fault_seconds:.0f} s")
            start = time.monotonic()
            begin()
            time.sleep(args.fault_seconds)
            resumed = time.monotonic()
            end()
            time.sleep(args.pause_seconds)
            summary = summarize(load, name, start, resumed, time.monotonic())
            results.append(summary)
            out(json.dumps(summary))

        fault(
            "pg_hang",
            lambda: stack.signal_postgres(signal.SIGSTOP),
            lambda: stack.signal_postgres(signal.SIGCONT),
        )
        fault(
            "redis_hang",
            lambda: stack.redis_process.send_signal(signal.SIGSTOP),
            lambda: stack.redis_process.send_signal(signal.SIGCONT),
        )
        fault("redis_kill", stack.kill_redis, stack.start_redis)

        job_ids = batch_of_jobs(stack, args.jobs)
        time.sleep(1)

        def kill_worker():
            workers[0].send_signal(signal.SIGKILL)
            for child in _children(workers[0].pid):
                os.kill(child, signal.SIGKILL)

        fault(
            "worker_kill",
            kill_worker,
            lambda: workers.append(
                stack.start_celery_worker("c", concurrency=2, **job_env)
            ),
        )
        deadline = time.monotonic() + 60
        while unfinished_jobs(job_ids) and time.monotonic() < deadline:
            time.sleep(1)
        load.stop()
        lost_jobs = unfinished_jobs(job_ids)
        lost = lost_writes(load)
    finally:
        stack.close()

    by_name = {r["fault"]: r for r in results}
    recovery = max(
        (r["recovery_s"] for r in results if r["recovery_s"] is not None), default=None
    )  # the baseline ("none") has no recovery
    figures = {
        "faults": results,
        "acknowledged_writes": len(load.acknowledged),
        "lost_writes": lost,
        "jobs_not_done": lost_jobs,
    }
    out()
    out(
        f"{'fault':<12} {'cached ok':>9} {'cached p99':>10} {'1st fast 503':>12} "
        f"{'p99':>7} {'recovery':>8}"
    )
    for r in results:
        out(
            f"{r['fault']:<12} {fmt(r['cached_ok_share'], '.3f'):>9} "
            f"{fmt(r['cached_p99_s'], '.3f'):>10} "
            f"{fmt(r['first_fast_503_s'], '.2f'):>12} "
            f"{fmt(r['p99_s'], '.3f'):>7} {fmt(r['recovery_s'], '.2f'):>8}"
        )
    out(
        f"acknowledged writes {len(load.acknowledged)}, lost {lost}; "
        f"jobs of the batch not done {lost_jobs}"
    )
    pg = by_name.get("pg_hang", {})
    redis_hang = by_name.get("redis_hang", {})
    result = {
        "pg_hang_cached_ok_share": pg.get("cached_ok_share"),
        "pg_hang_p99_s": pg.get("p99_s"),
        "redis_hang_p99_s": redis_hang.get("p99_s"),
        "recovery_s": recovery,
        "lost_writes": lost + lost_jobs,
    }
    for key, value in result.items():
        run.check(value is not None, f"{key} could not be measured")
    run.check(len(load.acknowledged) > 0, "no write was acknowledged")
    return run.finish(
        {
            key: value if value is None else round(value, 3)
            for key, value in result.items()
        },
        figures,
    )


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def _children(pid):
    import psutil

    try:
        return [child.pid for child in psutil.Process(pid).children(True)]
    except psutil.NoSuchProcess:
        return []


if __name__ == "__main__":
    sys.exit(main())
