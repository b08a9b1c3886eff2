"""Backups benchmark: how long a backup and an in-place restore of a realistic tenant
take, and whether its visitors notice the restore.

Runs in a database of its own (``<name>_bench_backups``, dropped and re-created).
Steps:

1. a tenant with ``--pages`` article pages (each with a revision) and ``--images``
   small PNG images (made with Pillow);
2. ``backup_s``: one on-demand backup (export, copy to the backup storage, SHA-256);
3. a gunicorn pool (production settings, 2 workers) serves the tenant; readers send
   a GET every 10 ms (not waiting for earlier answers), cycling through a hot set of
   ``--hot-pages`` pages warmed first, while ``restore_s``, an in-place restore of
   that backup, runs in this process (checksum, shadow schema, verification, swap;
   the swap purges the tenant's page cache, so reads after it render again);
4. ``restore_read_gap_s``: the longest time between two successful reads from the
   start of the restore to a second after it ended, and ``restore_failed_reads``:
   reads in that window that did not answer 200.

Last line: ``RESULT backup_s=X restore_s=X restore_read_gap_s=X
restore_failed_reads=X``. Goals: no failed read, the gap at most 0.5 s.

Usage: make bench-backups  (options: python bench/backups/run.py --help)
"""

import argparse
import http.client
import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
from bench.common import (
    RESULTS,
    Run,
    create_unlimited_plan,
    gunicorn_env,
    out,
    use_bench_database,
)

SLUG = "bigsite"
HOST = "bigsite.localhost"


def build_tenant(pages: int, images: int) -> list[str]:
    """The tenant with its pages and images; returns the pages' paths."""
    from django.core.files.images import ImageFile
    from django.db import connection
    from django_tenants.utils import schema_context
    from PIL import Image as PILImage
    from wagtail.images.models import Image
    from wagtail.models import Site

    from content.models import ArticlePage
    from tenants.provisioning.creation import tenant_create

    plan = create_unlimited_plan()
    tenant_create(slug=SLUG, name="Big site", domains=[HOST], plan=plan)
    paths = []
    with schema_context(SLUG):
        home = Site.objects.get(is_default_site=True).root_page.specific
        for index in range(pages):
            article = ArticlePage(
                title=f"Article {index}",
                slug=f"article-{index}",
                intro=f"Intro of article {index}. " * 4,
                body=[("paragraph", f"<p>Body of article {index}. " * 20 + "</p>")],
            )
            home.add_child(instance=article)
            article.save_revision()
            paths.append(f"/article-{index}/")
            if (index + 1) % 200 == 0:
                out(f"  ... {index + 1} pages")
        for index in range(images):
            buffer = io.BytesIO()
            colour = (index % 256, (index * 7) % 256, (index * 13) % 256)
            PILImage.new("RGB", (64, 64), colour).save(buffer, "PNG")
            Image.objects.create(
                title=f"Image {index}",
                file=ImageFile(io.BytesIO(buffer.getvalue()), f"image-{index}.png"),
            )
    connection.set_schema_to_public()
    return paths


def _get(port: int, path: str) -> int:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path, headers={"Host": HOST})
        response = conn.getresponse()
        response.read()
        conn.close()
        return response.status
    except OSError:
        return 0


class Reader(threading.Thread):
    """Sends a GET every ``interval`` seconds, whether or not earlier ones have
    answered (a pool of client threads, as many visitors would), cycling through
    ``paths``; records when each answered and its status."""

    def __init__(self, port: int, paths: list[str], interval: float) -> None:
        super().__init__(daemon=True)
        self.port, self.paths, self.interval = port, paths, interval
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def _one(self, path: str) -> None:
        status = _get(self.port, path)
        with self._lock:
            self.samples.append((time.monotonic(), status))

    def run(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=32) as clients:
            index = 0
            next_at = time.monotonic()
            while not self.stop.is_set():
                clients.submit(self._one, self.paths[index % len(self.paths)])
                index += 1
                next_at += self.interval
                time.sleep(max(0.0, next_at - time.monotonic()))


def read_gap(samples: list[tuple[float, int]], start: float, end: float):
    window = sorted((t, s) for t, s in samples if start <= t <= end)
    failed = sum(1 for _, status in window if status != 200)
    last_ok = start
    gap, gap_at = 0.0, start
    for moment, status in window:
        if status == 200:
            if moment - last_ok > gap:
                gap, gap_at = moment - last_ok, last_ok
            last_ok = moment
    if end - last_ok > gap:
        gap, gap_at = end - last_ok, last_ok
    return gap, failed, len(window), gap_at - start


def plot(samples, start: float, timings: dict[str, float]) -> None:
    """Answered reads per 100 ms around the restore, with its steps marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 3.5))
    for wanted, colour, label in (
        (True, "tab:green", "200"),
        (False, "tab:red", "other"),
    ):
        moments = [t - start for t, s in samples if (s == 200) == wanted]
        if moments:
            axis.hist(
                moments,
                bins=[x / 10 for x in range(-35, int(max(moments) * 10) + 2)],
                color=colour,
                label=label,
            )
    for name, moment in timings.items():
        axis.axvline(moment, color="grey", linewidth=0.8)
        axis.text(moment, axis.get_ylim()[1] * 0.95, name, rotation=90, fontsize=7)
    axis.set_xlabel("seconds since the restore started")
    axis.set_ylabel("answers per 100 ms")
    axis.set_title("Public reads of the tenant during an in-place restore")
    axis.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(RESULTS / "backups.png", dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=1000, help="Article pages.")
    parser.add_argument("--images", type=int, default=200, help="Images (PNG).")
    parser.add_argument(
        "--interval", type=float, default=0.01, help="Seconds between reads."
    )
    parser.add_argument("--port", type=int, default=18533, help="gunicorn's port.")
    parser.add_argument(
        "--hot-pages",
        type=int,
        default=20,
        help="Pages the readers cycle through (a site's hot set, warmed first).",
    )
    parser.add_argument(
        "--reuse-database",
        action="store_true",
        help="Measure again on the tenant an earlier run built (skips building it).",
    )
    args = parser.parse_args()
    run = Run("backups", parser, args)

    if args.reuse_database:
        parts = urlsplit(os.environ["DATABASE_URL"])
        os.environ["DATABASE_URL"] = urlunsplit(
            parts._replace(path=f"{parts.path}_bench_backups")
        )
    else:
        use_bench_database("bench_backups")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms_project.settings.dev")
    os.environ.setdefault(
        "CMS_BACKUP_DIR", str(Path(tempfile.gettempdir()) / "bench-backups")
    )
    import django

    django.setup()
    from django.core.management import call_command

    from cms_project import devstack
    from tenants.backups.restore import restore_backup
    from tenants.backups.snapshots import backup_take

    if args.reuse_database:
        out("== reusing the tenant of an earlier run")
        paths = [f"/article-{index}/" for index in range(args.pages)]
    else:
        out("== setting up a fresh benchmark database (migrate, template)")
        call_command("migrate", verbosity=0)
        out(f"== a tenant with {args.pages} pages and {args.images} images")
        paths = build_tenant(args.pages, args.images)

    out("== backup")
    began = time.perf_counter()
    backup = backup_take(slug=SLUG)
    backup_s = time.perf_counter() - began
    out(f"   {backup_s:.2f} s, {backup.size_bytes / 2**20:.1f} MiB, {backup.rows} rows")

    log = Path(tempfile.gettempdir()) / "bench-backups-gunicorn.log"
    # a loaded machine boots Django slowly: wait longer than the default minute
    pool = devstack.start_gunicorn(
        args.port, env=gunicorn_env(workers=2), log_path=log, workers=2, timeout=300
    )
    try:
        hot = ["/", *paths[: args.hot_pages - 1]]
        for path in hot:  # warm the workers and the page cache
            _get(args.port, path)
        reader = Reader(args.port, hot, args.interval)
        reader.start()
        time.sleep(3.5)  # steady state before the restore
        out("== restore in place under read load")
        start = time.monotonic()
        result = restore_backup(slug=SLUG, backup_id=backup.pk)
        end = time.monotonic()
        restore_s = end - start
        time.sleep(1)
        reader.stop.set()
        reader.join()
    finally:
        devstack.stop_process(pool)
    gap, failed, reads, gap_at = read_gap(reader.samples, start, end + 1)
    before = [s for t, s in reader.samples if t < start]
    baseline_gap = read_gap(reader.samples, start - 3, start)[0]
    out(f"   longest gap in the 3 s before the restore: {baseline_gap:.3f} s")
    out(
        f"   {restore_s:.2f} s; {result.rows} rows and {result.media_files} files "
        f"verified; {reads} reads during it, {failed} failed, longest gap "
        f"{gap:.3f} s from {gap_at:.2f} s into it ({len(before)} reads before it, "
        f"{sum(1 for s in before if s != 200)} failed)"
    )
    out(f"   steps (s from the start): {result.timings}")
    figures = {
        "pages": args.pages,
        "images": args.images,
        "backup_s": backup_s,
        "backup_mib": backup.size_bytes / 2**20,
        "restore_s": restore_s,
        "restore_read_gap_s": gap,
        "restore_failed_reads": failed,
        "restore_reads": reads,
        "restore_steps_s": result.timings,
        "restore_gap_at_s": gap_at,
        "baseline_gap_s": baseline_gap,
    }
    plot(reader.samples, start, result.timings)
    run.check(reads > 0, "no read was answered during the restore")
    return run.finish(
        {
            "backup_s": round(backup_s, 2),
            "restore_s": round(restore_s, 2),
            "restore_read_gap_s": round(gap, 3),
            "restore_failed_reads": failed,
        },
        figures,
    )


if __name__ == "__main__":
    raise SystemExit(main())
