"""Publish fairness benchmark, end to end through HTTP: does one tenant's huge publish
delay another tenant's single publish, from the editor's click until the public page
serves the new revision, and what does fair order cost?

Runs in a database of its own (``<name>_bench_fair``, dropped and re-created) on the
configured PostgreSQL and Redis, with the product on gunicorn and one real Celery
worker pool (prefork, ``--concurrency`` processes) shared by every step of the run:

1. idle: tenants B and C each publish one page through the write API
   (``PATCH /api/v2/articles/<id>/`` with ``"publish": true``) on an otherwise idle
   pool (``--idle-runs`` times);
2. fair: tenant A's editor clicks "Publish with subpages" in the admin for a section of
   ``--subtree`` pages (one job, run in slices) and publishes ``--singles`` pages one
   by one through the write API, then B and C publish one page each;
3. FIFO: the same work as plain Celery tasks in arrival order (the path the product
   had before the fair queue: ``fifo_tasks.py``, sent straight to the pool, since the
   product no longer has it), then B and C; each click saves the page's revision
   through the same write API (a draft ``PATCH``) before its task is sent, so both
   steps carry the same web requests.

Steps 2 and 3 alternate for ``--rounds`` rounds (the machine may be shared: neither
mode always runs first), and every ratio is the median of the rounds' own ratios (each
round's two steps ran side by side) with a 95 % bootstrap interval. Click-to-live
runs from the moment the click's request is sent (FIFO: the draft's request, then the
task) to the first time the public URL, polled through gunicorn, serves the new
revision. A step's throughput is all its pages over the time from the first click to
the last page published. The last line
is ``RESULT click_to_live_idle_p50_s=X click_to_live_backlog_p95_s=X
fair_latency_ratio=X fifo_latency_ratio=X throughput_ratio_vs_fifo=X jobs_per_s=X
fair_latency_ratio_ci_high=X throughput_ratio_vs_fifo_ci_low=X
throughput_ratio_vs_fifo_ci_high=X``, where a latency ratio is the median over the
rounds of the worse of B and C over the idle median, and the throughput ratio the
median over the rounds of fair's pages/s over FIFO's.

Method change (2026-12-04): the throughput ratio was all fair steps' pages over all
FIFO steps' seconds, pooled, from 3 rounds, with no interval: one slow round moved it
as much as the difference it measures (16 records gave 0.84-1.12 on the same
publishing code). Now 5 rounds, the median of per-round ratios and its interval.

Usage: make bench-publish_fairness  (options: python bench/publish_fairness/run.py -h)
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
from bench.common import (
    REPO,
    RESULTS,
    Run,
    bootstrap_median,
    gunicorn_env,
    interval,
    out,
    percentile,
    use_bench_database,
)

QUEUE = "bench-fair"
PORT = 18473
PASSWORD = "bench-password-1"
TENANTS = {"a": "fa_alpha", "b": "fa_bravo", "c": "fa_charlie"}


def host(schema: str) -> str:
    return f"{schema.replace('_', '-')}.localhost"


def process_env(concurrency: int) -> dict[str, str]:
    """gunicorn and the worker share settings (and so the page cache's keys): the
    development settings without debug, over plain HTTP on the loopback."""
    env = gunicorn_env(workers=2)
    env.update(
        DJANGO_SETTINGS_MODULE="cms_project.settings.dev",
        DEBUG="false",
        CMS_JOBS_QUEUE=QUEUE,
        LOG_LEVEL="WARNING",
        CMS_LOG_FORMAT="console",
    )
    return env


def start_worker(env: dict, concurrency: int, log_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "cms_project", "worker",
            "--pool", "prefork", "--concurrency", str(concurrency), "-Q", QUEUE,
            "--include", "bench.publish_fairness.fifo_tasks",
            "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
        ],
        cwd=REPO, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip


# --- pages --------------------------------------------------------------------------


IMMEDIATE_TASKS = {
    "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}
}


def make_pages(schema: str, count: int, *, prefix: str, parent_id=None) -> list[int]:
    """Draft pages made by the benchmark itself (their index updates run here, not
    on the pool: setting up is not what is measured)."""
    from django.test import override_settings
    from django_tenants.utils import schema_context
    from wagtail.models import Page, Site

    from content.models import ArticlePage

    ids = []
    with schema_context(schema), override_settings(TASKS=IMMEDIATE_TASKS):
        parent = (
            Page.objects.get(pk=parent_id)
            if parent_id
            else Site.objects.get(is_default_site=True).root_page
        )
        for index in range(count):
            page = ArticlePage(title=f"{prefix} {index}", intro="x", live=False)
            parent.add_child(instance=page)
            page.save_revision()
            ids.append(page.pk)
    return ids


def new_revisions(schema: str, ids: list[int], marker: str = "") -> None:
    """Give each page a new draft revision, so publishing it has work to do."""
    from django.test import override_settings
    from django_tenants.utils import schema_context

    from content.models import ArticlePage

    with schema_context(schema), override_settings(TASKS=IMMEDIATE_TASKS):
        for page in ArticlePage.objects.filter(pk__in=ids):
            page.intro = marker or f"revision {uuid.uuid4().hex}"
            page.save_revision()


def last_published(schema: str, ids: list[int], since: float) -> float | None:
    """When the last of ``ids`` was published, once all were after ``since``."""
    from django_tenants.utils import schema_context
    from wagtail.models import Page

    with schema_context(schema):
        times = [
            when.timestamp() if when else 0.0
            for when in Page.objects.filter(pk__in=ids).values_list(
                "last_published_at", flat=True
            )
        ]
    if len(times) == len(ids) and min(times) >= since:
        return max(times)
    return None


# --- an editor, over HTTP -------------------------------------------------------------


class Editor:
    """A tenant's administrator clicking in the admin or calling the write API."""

    def __init__(self, schema: str) -> None:
        import requests

        self.host = host(schema)
        self.base = f"http://127.0.0.1:{PORT}"
        self.session = requests.Session()
        self.session.headers["Host"] = self.host
        self.session.auth = None
        self.logged_in = False
        self.api_token = api_token(schema)

    def api_publish(self, page_id: int, marker: str) -> float:
        """PATCH the article with a new intro and publish: returns the click time."""
        clicked = time.time()
        response = self.session.patch(
            f"{self.base}/api/v2/articles/{page_id}/",
            json={"intro": marker, "publish": True},
            headers={"Authorization": f"Bearer {self.api_token}"},
            timeout=60,
        )
        if response.status_code != 202:
            raise SystemExit(f"publish refused: {response.status_code} {response.text}")
        return clicked

    def api_save(self, page_id: int, marker: str) -> float:
        """PATCH the article with a new intro, as a draft: the FIFO step's click
        saves its revision through the same API (and so the same web workers) as the
        fair step's publish, then sends the plain task. Returns the click time."""
        clicked = time.time()
        response = self.session.patch(
            f"{self.base}/api/v2/articles/{page_id}/",
            json={"intro": marker},
            headers={"Authorization": f"Bearer {self.api_token}"},
            timeout=60,
        )
        if response.status_code != 200:
            raise SystemExit(f"save refused: {response.status_code} {response.text}")
        return clicked

    def _csrf_token(self) -> str:
        from django.conf import settings

        return self.session.cookies[settings.CSRF_COOKIE_NAME]

    def _log_in(self) -> None:
        login = f"{self.base}/admin/login/"
        self.session.get(login, timeout=60)
        response = self.session.post(
            login,
            data={
                "username": "admin",
                "password": PASSWORD,
                "csrfmiddlewaretoken": self._csrf_token(),
            },
            allow_redirects=False,
            timeout=60,
        )
        if response.status_code != 302:
            raise SystemExit(
                f"admin login failed at {self.host}: {response.status_code}"
            )
        self.logged_in = True

    def publish_with_subpages(self, root_id: int) -> float:
        """The admin's "Publish with subpages" (its form, then its POST)."""
        if not self.logged_in:
            self._log_in()
        url = f"{self.base}/admin/content/publish-in-background/{root_id}/"
        self.session.get(url, timeout=60)
        clicked = time.time()
        response = self.session.post(
            url,
            data={
                "action": "publish_subtree",
                "csrfmiddlewaretoken": self._csrf_token(),
            },
            allow_redirects=False,
            timeout=60,
        )
        if response.status_code != 302:
            raise SystemExit(f"subtree publish refused: {response.status_code}")
        return clicked

    def wait_live(self, path: str, marker: str, timeout: float) -> float:
        """Poll the public page until it serves ``marker``; returns that moment."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.session.get(f"{self.base}{path}", timeout=60)
            if response.status_code == 200 and marker in response.text:
                return time.time()
            time.sleep(0.02)
        raise SystemExit(f"{self.host}{path} never served {marker!r}")


def api_token(schema: str) -> str:
    """A write-and-publish API token of the tenant's administrator, as a site's
    build pipeline would hold one (Settings → API tokens)."""
    from django.contrib.auth import get_user_model
    from django_tenants.utils import schema_context

    from content.integrations.tokens import token_create
    from tenants.models import Tenant

    with schema_context(schema):
        return token_create(
            tenant=Tenant.objects.select_related("plan").get(schema_name=schema),
            user=get_user_model().objects.get(username="admin"),
            name="bench publisher",
            scopes=["read", "write", "publish"],
        ).plaintext


def click_to_live(editor: Editor, page_id: int, path: str, *, mode: str, timeout):
    """One publish of one page, from the click to the public page serving it."""
    marker = f"m-{uuid.uuid4().hex}"
    schema = [s for s in TENANTS.values() if host(s) == editor.host][0]
    if mode == "fifo":
        clicked = editor.api_save(page_id, marker)
        fifo_publish(schema, page_id)
    else:
        clicked = editor.api_publish(page_id, marker)
    return editor.wait_live(path, marker, timeout) - clicked


def fifo_publish(schema: str, page_id: int) -> None:
    """Send the plain FIFO publish task of a page (from the tenant's schema, which
    tenant-schemas-celery hands to the worker)."""
    from django_tenants.utils import schema_context

    from cms_project.celery import app

    with schema_context(schema):
        app.send_task("bench.fifo_publish", args=(page_id,), queue=QUEUE)


def drain(timeout: float) -> None:
    """Wait until the pool has nothing queued or in flight (index updates of the
    previous step included), so a step never pays for the one before."""
    from cms_project.celery import app
    from tenants.jobs import fair_queue

    deadline = time.monotonic() + timeout
    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        while time.monotonic() < deadline:
            waiting = client.llen(QUEUE) + sum(
                fair_queue.pending(schema=s) + len(fair_queue.in_flight(schema=s))
                for s in TENANTS.values()
            )
            if not waiting:
                break
            time.sleep(0.2)
    time.sleep(1.0)


def singles_and_b_c(mode, editors, pages, timeout) -> tuple[float, float]:
    """B's and C's click-to-live, clicked at once in two threads."""
    results = {}

    def one(key):
        try:
            results[key] = click_to_live(
                editors[key], pages[key][0], f"/{pages['slug'][key]}/", mode=mode,
                timeout=timeout,
            )  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - a thread's SystemExit is silent
            results[key] = exc

    threads = [threading.Thread(target=one, args=(key,)) for key in ("b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for key in ("b", "c"):
        if isinstance(results.get(key), BaseException):
            raise SystemExit(f"{key}: {results[key]}")
    return results["b"], results["c"]


def run_backlog(mode: str, editors, pages, timeout: float) -> dict:
    """A's subtree and singles, then B's and C's single publish."""
    from django_tenants.utils import schema_context

    from cms_project.celery import app

    a = TENANTS["a"]
    root_id, section, singles = pages["root"], pages["section"], pages["singles"]
    new_revisions(a, section)
    drain(timeout)
    if mode == "fifo":
        # a FIFO "click" saves the revision through the write API and sends the
        # task, as the fair step's API publish does: the same web requests compete
        # with the pool inside both measured spans
        began = time.time()
        with schema_context(a):
            app.send_task("bench.fifo_publish_subtree", args=(root_id,), queue=QUEUE)

        def click(page_id: int) -> None:
            editors["a"].api_save(page_id, f"s-{uuid.uuid4().hex}")
            fifo_publish(a, page_id)

    else:
        began = editors["a"].publish_with_subpages(root_id)

        def click(page_id: int) -> None:
            editors["a"].api_publish(page_id, f"s-{uuid.uuid4().hex}")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(click, singles))
    b_s, c_s = singles_and_b_c(mode, editors, pages, timeout)
    deadline = time.monotonic() + timeout
    while (last := last_published(a, section + singles, began)) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for A's pages ({mode})")
        time.sleep(0.2)
    jobs = len(section) + len(singles) + 2
    return {"b_s": b_s, "c_s": c_s, "jobs": jobs, "seconds": last - began}


def throughput(runs: list[dict]) -> float:
    """The pages per second of ``runs`` (run_backlog's records), pooled: all their
    pages over all their seconds."""
    return sum(run["jobs"] for run in runs) / sum(run["seconds"] for run in runs)


def throughput_ratios(steps: dict[str, list[dict]]) -> list[float]:
    """Fair's throughput over FIFO's in each round, from the rounds' ``"fair"`` and
    ``"fifo"`` step records (one of each a round, in round order): each round's own
    ratio, since its two steps ran side by side; never pooled over rounds, where one
    slow round would move the figure as much as the difference it measures."""
    return [
        throughput([fair]) / throughput([fifo])
        for fair, fifo in zip(steps["fair"], steps["fifo"], strict=True)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--subtree", type=int, default=1000, help="pages of tenant A's section"
    )
    parser.add_argument(
        "--singles", type=int, default=500, help="tenant A's single publishes"
    )
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--idle-runs", type=int, default=5, help="B and C alone, repeated"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="fair and FIFO steps, alternated"
    )
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds to wait for any step"
    )
    args = parser.parse_args()
    if min(args.subtree, args.singles, args.concurrency, args.idle_runs) < 1:
        parser.error("every count must be >= 1")
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")

    run = Run("publish_fairness", parser, args)
    use_bench_database("bench_fair")
    env = process_env(args.concurrency)
    os.environ.update(
        {
            k: env[k]
            for k in (
                "DJANGO_SETTINGS_MODULE",
                "DEBUG",
                "CMS_JOBS_QUEUE",
                "LOG_LEVEL",
                "SECRET_KEY",  # the API tokens made here must hash as the pool's
            )  # fmt: skip
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    from bench.common import create_unlimited_plan
    from cms_project import devstack
    from cms_project.celery import app
    from tenants.jobs import fair_queue
    from tenants.provisioning.creation import tenant_create
    from tenants.tariffs.plans import plan_update

    out("== setting up a fresh benchmark database (migrate, three tenants)")
    call_command("migrate", verbosity=0)
    plan = create_unlimited_plan()
    # a tenant may use the whole pool, as on a plan of the size of the pool
    plan_update(name=plan, limits={"publish_concurrency": args.concurrency})
    for slug in TENANTS.values():
        tenant_create(
            slug=slug, name=slug, domains=[host(slug)], plan=plan,
            admin_password=PASSWORD,
        )  # fmt: skip
    fair_queue.clear()
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(QUEUE)
    out(
        f"== tenant A: a section of {args.subtree} pages and {args.singles} pages; "
        "B and C: one page each"
    )
    a = TENANTS["a"]
    root_id = make_pages(a, 1, prefix="Section")[0]
    section = [root_id] + make_pages(
        a, args.subtree - 1, prefix="Section page", parent_id=root_id
    )
    pages = {
        "root": root_id,
        "section": section,
        "singles": make_pages(a, args.singles, prefix="Single"),
        "b": make_pages(TENANTS["b"], 1, prefix="News"),
        "c": make_pages(TENANTS["c"], 1, prefix="News"),
        "slug": {"b": "news-0", "c": "news-0"},
    }

    tmp = Path(tempfile.mkdtemp(prefix="bench-fair-"))
    web = devstack.start_gunicorn(
        PORT, env=env, log_path=tmp / "gunicorn.log", workers=2, timeout=180
    )
    worker = start_worker(env, args.concurrency, tmp / "worker.log")
    editors = {key: Editor(schema) for key, schema in TENANTS.items()}
    try:
        time.sleep(3)
        singles_and_b_c("fair", editors, pages, args.timeout)  # warm every process
        out(f"== idle pool: B and C alone, {args.idle_runs} runs (logs in {tmp})")
        idle_runs = []
        for _ in range(args.idle_runs):
            drain(args.timeout)
            idle_runs.append(singles_and_b_c("fair", editors, pages, args.timeout))
        idle_all = [value for run in idle_runs for value in run]
        idle_b = statistics.median(run[0] for run in idle_runs)
        idle_c = statistics.median(run[1] for run in idle_runs)
        steps: dict[str, list[dict]] = {"fifo": [], "fair": []}
        for round_ in range(args.rounds):
            order = ("fair", "fifo") if round_ % 2 == 0 else ("fifo", "fair")
            for mode in order:
                out(
                    f"== round {round_ + 1}, {mode}: A publishes its section and "
                    f"{args.singles} pages, then B and C one each"
                )
                step = run_backlog(mode, editors, pages, args.timeout)
                out(
                    f"   B {step['b_s']:.3f} s, C {step['c_s']:.3f} s, "
                    f"{step['jobs'] / step['seconds']:.1f} pages/s"
                )
                steps[mode].append(step)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        devstack.stop_process(web)

    def worse(runs: list[dict]) -> list[float]:
        return [max(run["b_s"] / idle_b, run["c_s"] / idle_c) for run in runs]

    throughput_per_round = throughput_ratios(steps)
    fair_latency = bootstrap_median(worse(steps["fair"]))
    throughput_ratio = bootstrap_median(throughput_per_round)
    backlog = [run[key] for run in steps["fair"] for key in ("b_s", "c_s")]
    figures = {
        "click_to_live_idle_p50_s": statistics.median(idle_all),
        "click_to_live_backlog_p95_s": percentile(backlog, 95),
        "fair_latency_ratio": fair_latency[0],
        "fifo_latency_ratio": statistics.median(worse(steps["fifo"])),
        "throughput_ratio_vs_fifo": throughput_ratio[0],
        "jobs_per_s": throughput(steps["fair"]),
        "fair_latency_ratio_ci_high": fair_latency[2],
        "throughput_ratio_vs_fifo_ci_low": throughput_ratio[1],
        "throughput_ratio_vs_fifo_ci_high": throughput_ratio[2],
    }
    out()
    out(
        f"pool: {args.concurrency} worker processes; A: a {args.subtree}-page section "
        f"and {args.singles} single publishes; {args.rounds} round(s)"
    )
    header = f"{'step':<8}{'B s (med)':>11}{'C s (med)':>11}{'pages/s':>9}"
    out(header)
    out("-" * len(header))
    out(f"{'idle':<8}{idle_b:>11.3f}{idle_c:>11.3f}{'-':>9}")
    for name, key in (("FIFO", "fifo"), ("fair", "fair")):
        runs = steps[key]
        out(
            f"{name:<8}{statistics.median(r['b_s'] for r in runs):>11.3f}"
            f"{statistics.median(r['c_s'] for r in runs):>11.3f}"
            f"{throughput(runs):>9.1f}"
        )
    out()
    out(
        f"click-to-live: idle p50 {figures['click_to_live_idle_p50_s']:.3f} s "
        "(goal <= 1), behind the backlog p95 "
        f"{figures['click_to_live_backlog_p95_s']:.3f} s"
    )
    out(
        f"B/C vs idle: fair {figures['fair_latency_ratio']:.2f}x (goal <= 2), "
        f"FIFO {figures['fifo_latency_ratio']:.2f}x"
    )
    out(
        f"B/C vs idle, fair, 95 % bootstrap interval {fair_latency[1]:.2f}-"
        f"{fair_latency[2]:.2f}"
    )
    out(
        f"throughput fair vs FIFO per round: "
        f"{', '.join(f'{r:.3f}' for r in throughput_per_round)}; median "
        f"{throughput_ratio[0]:.3f} (goal >= 0.9), 95 % bootstrap interval "
        f"{throughput_ratio[1]:.3f}-{throughput_ratio[2]:.3f}"
    )
    plot(idle_b, idle_c, steps)
    return run.finish(
        figures,
        {
            "idle_runs_s": idle_runs,
            "steps": steps,
            "pages_per_s": {mode: throughput(runs) for mode, runs in steps.items()},
            "throughput_ratio_per_round": throughput_per_round,
            "throughput_ratio": interval(throughput_ratio),
            "fair_latency_ratio": interval(fair_latency),
        },
    )


def plot(idle_b: float, idle_c: float, steps: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    names = ["idle", "FIFO", "fair"]
    b = [idle_b] + [
        statistics.median(r["b_s"] for r in steps[k]) for k in ("fifo", "fair")
    ]
    c = [idle_c] + [
        statistics.median(r["c_s"] for r in steps[k]) for k in ("fifo", "fair")
    ]
    width = 0.38
    positions = range(len(names))
    left.bar([p - width / 2 for p in positions], b, width, label="tenant B")
    left.bar([p + width / 2 for p in positions], c, width, label="tenant C")
    left.set_yscale("log")
    left.set_xticks(list(positions), names)
    left.set_ylabel("click to live (s, log)")
    left.set_title("One publish behind tenant A's section")
    left.legend()
    rates = [
        sum(r["jobs"] for r in steps[k]) / sum(r["seconds"] for r in steps[k])
        for k in ("fifo", "fair")
    ]
    right.bar(["FIFO", "fair"], rates)
    right.set_ylabel("pages published per second")
    right.set_title("Pool throughput")
    fig.tight_layout()
    fig.savefig(RESULTS / "publish_fairness.png", dpi=100)


if __name__ == "__main__":
    sys.exit(main())
