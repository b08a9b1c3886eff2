"""Every benchmark, one after the other, then one summary table (``make bench``).

Each benchmark runs as ``bench/<name>/run.py`` with its default arguments (the
headline run) in a process of its own; its record lands in ``bench/results/<name>/``.
The summary (``bench/results/summary/<UTC time>.md``, also printed) lists every
benchmark's RESULT or INVALID line and exit code; docs/benchmarks.md's headline table
is then regenerated (bench.report). Benchmarks must not share the machine with each
other: never run two at once.

Usage: ``python -m bench.suite [NAME ...]`` (default: all, in bench.report's order).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime

from bench import report
from bench.common import REPO, RESULTS, out


def run_one(name: str, extra: list[str]) -> tuple[int, str, float]:
    """Exit code, the RESULT/INVALID line (or the last line printed) and seconds."""
    began = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / name / "run.py"), *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    verdict = ""
    last = ""
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.startswith(("RESULT ", "INVALID ")):
            verdict = line.strip()
        elif line.strip():
            last = line.strip()
    code = process.wait()
    return code, verdict or f"(no RESULT) {last[-200:]}", time.monotonic() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default: {report.BENCHMARKS})"
    )
    parser.add_argument(
        "--args",
        default="",
        help="extra arguments for every benchmark (smoke runs only: a headline run "
        "uses the defaults)",
    )
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(report.BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    names = args.names or list(report.BENCHMARKS)
    started = datetime.now(UTC)
    rows = []
    for name in names:
        out(f"==== {name}")
        rows.append((name, *run_one(name, args.args.split())))
    lines = [
        f"# Benchmark suite, {started:%Y-%m-%d %H:%M} UTC",
        "",
        "| Benchmark | exit | minutes | RESULT / INVALID |",
        "| --- | ---: | ---: | --- |",
    ]
    lines += [
        f"| {name} | {code} | {seconds / 60:.1f} | `{verdict}` |"
        for name, code, verdict, seconds in rows
    ]
    summary = "\n".join(lines) + "\n"
    folder = RESULTS / "summary"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{started:%Y%m%dT%H%M%SZ}.md").write_text(summary)
    out()
    out(summary)
    report.main([])
    return 0 if all(code == 0 for _, code, _, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
