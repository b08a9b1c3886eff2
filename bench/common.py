"""What every benchmark script needs: a database of its own, percentiles, unbuffered
output, the environment of a production-like gunicorn pool, and the method a sceptic
accepts.

Each benchmark works in a database named after the configured one plus a suffix of
its own, so two benchmarks never drop each other's data nor the development data.

The method (docs/benchmarks.md, "Method"), in one place for every benchmark:

- ``interleaved``: two or more set-ups measured in alternating rounds in one run (the
  order reversed every other round), so that load from elsewhere on the machine falls
  on every side alike; each figure is the median of its rounds, and each ratio gets a
  95 % bootstrap interval over the rounds (``ratio_with_interval``);
- ``tail``: a p99 only from at least ``MIN_P99_SAMPLES`` samples per group, else
  nothing (and the run says so);
- ``calibrated_rate`` / ``flood_rate``: rates from capacity measured in the same run,
  never chosen by hand;
- ``Run``: validity checks collected while measuring; the ``RESULT`` line only when the
  run is valid, else an ``INVALID ...`` line and a non-zero exit; and every run, valid
  or not, on record in ``bench/results/<name>/<UTC time>.json`` with the date, the
  code's commit, the machine and its load at the start, the arguments and the figures
  (``python -m bench.report`` builds the headline table of docs/benchmarks.md from
  these);
- ``CpuMeter``: the CPU seconds of each process group (a pool, the load generator,
  the services) and of the whole machine over a benchmark's blocks, by kind of block:
  where the cores went while a block ran.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import itertools
import json
import math
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import psutil

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"

# A p99 is the 1 %-worst request: from fewer samples it is one or two requests.
MIN_P99_SAMPLES = 1000
# Fixed-rate load: the client must send at least this share of the asked rate.
MIN_ACHIEVED_RATE_SHARE = 0.95
# ... and be late by its own doing (not the server's) by at most this, p99.
MAX_CLIENT_LAG_P99_MS = 25.0
# The directories whose content is "the code" a run measured (docs do not count).
CODE_PATHS = (
    "bench", "cms_project", "content", "tenants", "templates", "deploy",
    # the tests' helpers that faults, pods and webhooks start their stacks with
    "tests/integration.py", "tests/private_stack.py", "tests/pods.py",
)  # fmt: skip

T = TypeVar("T")


def out(line: str = "") -> None:
    """Print at once: a benchmark's progress must show while it runs."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def database_url_named(database_url: str, name: str) -> str:
    """``database_url`` with its database replaced by ``name`` (``postgres``: the
    server's maintenance database, which exists where the configured one may not)."""
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(scheme="postgresql", path=f"/{name}"))


def use_bench_database(suffix: str) -> str:
    """Point DATABASE_URL at a fresh database ``<configured name>_<suffix>`` (dropped
    and re-created) on the configured server, and return its URL."""
    import psycopg

    url = database_url(suffix)
    name = urlsplit(url).path.lstrip("/")
    admin_url = database_url_named(url, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = url
    return url


def database_url(suffix: str) -> str:
    """The URL ``use_bench_database(suffix)`` made, without re-creating it."""
    configured = os.environ["DATABASE_URL"]
    name = urlsplit(configured).path.lstrip("/")
    return database_url_named(configured, f"{name}_{suffix}")


# The load generator, the routers and the pools are all on loopback: the routers and
# the pools believe the visitors named in X-Forwarded-For from there
# (CMS_TRUSTED_PROXIES), so a benchmark's load can come from many clients.
LOOPBACK_PROXIES = ("127.0.0.1/32",)


def client_addresses(network: str, count: int) -> tuple[str, ...]:
    """The first ``count`` host addresses of ``network`` (``"203.0.113.0/24"``):
    the visitors a benchmark's requests name in X-Forwarded-For, each with its own
    per-client budget at the edge and in the pods."""
    hosts = ipaddress.ip_network(network).hosts()
    addresses = tuple(str(address) for address in itertools.islice(hosts, count))
    if len(addresses) < count:
        raise ValueError(f"{network} holds fewer than {count} client addresses")
    return addresses


# ports this process has handed out: one is free when picked but not taken until its
# server binds it, so a second pick before then could get the same one
_handed_out: set[int] = set()


def free_port(start: int = 20000, end: int = 30000) -> int:
    """A free TCP port on 127.0.0.1 below the ephemeral range (fixed ports collide
    when two engineers run a benchmark at once), never one this process handed out
    before: servers started together pick every port before any binds, and with ~50
    picks a random one in 10,000 repeats about once in eight runs (two of
    shared_vs_isolated's 50 pools were given one port). The tests' servers use it
    too (tests.integration)."""
    for port in random.sample(range(start, end), 200):
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port found in {start}-{end}")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def tail(values: Sequence[float], q: float = 99) -> float | None:
    """The ``q``-th percentile, or None when there are too few samples for it to mean
    anything (``MIN_P99_SAMPLES`` for a p99; proportionally fewer for a p90)."""
    needed = round(MIN_P99_SAMPLES * 0.01 / max(1e-9, 1 - q / 100))
    if len(values) < needed:
        return None
    return percentile(values, q)


def gunicorn_env(*, workers: int) -> dict[str, str]:
    """Production settings over plain HTTP on the loopback, no access log (writing
    one line per request would be part of what is measured)."""
    env = dict(os.environ, GUNICORN_ACCESSLOG="/dev/null")
    env["GUNICORN_WORKERS"] = str(workers)
    env["DJANGO_SETTINGS_MODULE"] = "cms_project.settings.production"
    env.setdefault("SECRET_KEY", "bench-" + "k" * 60)
    # production settings have no default host list; the bench hosts vary per run
    env.setdefault("ALLOWED_HOSTS", "*")
    env["SECURE_SSL_REDIRECT"] = "false"
    return env


def start_pool(
    name: str, port: int, *, env: dict[str, str], workers: int | None = None
):
    """A gunicorn pool on 127.0.0.1:``port``; its log in a file of this run's own
    (``bench-<name>-<pid>.log`` in the temporary directory). Booting Django and
    Wagtail in several workers on a heavily loaded machine takes minutes: up to 10."""
    from cms_project import devstack

    return devstack.start_gunicorn(
        port, env=env, log_path=pool_log(name), workers=workers, timeout=600
    )


def pool_log(name: str) -> Path:
    import tempfile

    return Path(tempfile.gettempdir()) / f"bench-{name}-{os.getpid()}.log"


def create_unlimited_plan(name: str = "bench-unlimited") -> str:
    """A plan no benchmark load can reach, for benchmarks that measure the pool, not
    the tariff (Django must be set up)."""
    from tenants.models import LIMIT_FIELDS
    from tenants.tariffs.plans import MAX_LIMIT, plan_create

    plan_create(
        name=name,
        title="Benchmark (no effective limits)",
        limits=dict.fromkeys(LIMIT_FIELDS, MAX_LIMIT),
    )
    return name


# --- interleaved rounds, medians and intervals -------------------------------------


def interleaved(
    setups: dict[str, Callable[[], T]], *, rounds: int
) -> dict[str, list[T]]:
    """Measure every set-up once per round, ``rounds`` times, the order reversed every
    other round (A B, B A, A B, ...): whatever else the machine does, and whatever a
    set-up leaves behind for the next one, falls on every side alike."""
    names = list(setups)
    measured: dict[str, list[T]] = {name: [] for name in names}
    for index in range(rounds):
        for name in names if index % 2 == 0 else reversed(names):
            measured[name].append(setups[name]())
    return measured


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def bootstrap_ratio(
    numerator: Sequence[float],
    denominator: Sequence[float],
    *,
    resamples: int = 5000,
    seed: int = 15,
) -> tuple[float, float, float]:
    """The ratio of the medians of two sets of rounds and a 95 % bootstrap interval
    for it (percentile method, rounds resampled with replacement on each side). With
    few rounds the interval is wide, which is the point: it says how much one run of
    this length can tell."""
    import numpy as np

    top = np.asarray(numerator, dtype=float)
    bottom = np.asarray(denominator, dtype=float)
    if not len(bottom) or np.median(bottom) == 0:
        return float("nan"), float("nan"), float("nan")
    point = float(np.median(top) / np.median(bottom))
    if len(top) < 2 or len(bottom) < 2 or (bottom <= 0).any():
        # a round that measured nothing: no interval (the benchmark says why)
        return point, float("nan"), float("nan")
    generator = np.random.default_rng(seed)
    tops = np.median(
        generator.choice(top, size=(resamples, len(top)), replace=True), axis=1
    )
    bottoms = np.median(
        generator.choice(bottom, size=(resamples, len(bottom)), replace=True), axis=1
    )
    ratios = tops / bottoms
    low, high = np.percentile(ratios, [2.5, 97.5])
    return point, float(low), float(high)


def bootstrap_median(
    values: Sequence[float], *, resamples: int = 5000, seed: int = 15
) -> tuple[float, float, float]:
    """The median of per-round figures (say, each round's own ratio of two set-ups
    measured side by side) and a 95 % bootstrap interval for it (rounds resampled
    with replacement): one round's spike moves it no more than any other round."""
    import numpy as np

    array = np.asarray(values, dtype=float)
    if not len(array):
        return float("nan"), float("nan"), float("nan")
    point = float(np.median(array))
    if len(array) < 2:
        return point, float("nan"), float("nan")
    generator = np.random.default_rng(seed)
    medians = np.median(
        generator.choice(array, size=(resamples, len(array)), replace=True), axis=1
    )
    low, high = np.percentile(medians, [2.5, 97.5])
    return point, float(low), float(high)


def bootstrap_pooled_ratio(
    numerator_rounds: Sequence[Sequence[float]],
    denominator_rounds: Sequence[Sequence[float]],
    *,
    q: float = 99,
    resamples: int = 2000,
    seed: int = 15,
) -> tuple[float, float, float]:
    """The ratio of two groups' ``q``-th percentiles, each over all its rounds'
    samples pooled, and a 95 % interval by a block bootstrap: rounds (not single
    requests, which are correlated within a round) resampled with replacement on
    each side, their samples pooled, the ratio taken again."""
    import numpy as np

    def pooled(rounds: Sequence[Sequence[float]]) -> np.ndarray:
        return np.concatenate([np.asarray(r, dtype=float) for r in rounds])

    point = float(
        np.percentile(pooled(numerator_rounds), q)
        / np.percentile(pooled(denominator_rounds), q)
    )
    if len(numerator_rounds) < 2 or len(denominator_rounds) < 2:
        return point, float("nan"), float("nan")
    generator = np.random.default_rng(seed)
    ratios = []
    for _ in range(resamples):
        top = [
            numerator_rounds[i]
            for i in generator.integers(0, len(numerator_rounds), len(numerator_rounds))
        ]
        bottom = [
            denominator_rounds[i]
            for i in generator.integers(
                0, len(denominator_rounds), len(denominator_rounds)
            )
        ]
        ratios.append(np.percentile(pooled(top), q) / np.percentile(pooled(bottom), q))
    low, high = np.percentile(ratios, [2.5, 97.5])
    return point, float(low), float(high)


def pss_mb(pids: Sequence[int]) -> float:
    """Proportional set size of these processes together, from
    ``/proc/<pid>/smaps_rollup``: a page shared by n processes counts 1/n in each,
    so pages shared after fork are not counted once per worker as RSS does."""
    total_kb = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total_kb += int(line.split()[1])
                break
    return total_kb / 1024


def interval(ratio: tuple[float, float, float]) -> dict[str, float]:
    """A ratio and its interval, as recorded."""
    return dict(zip(("median", "ci_low", "ci_high"), ratio, strict=True))


def calibrated_rate(capacity_rps: float, *, fraction: float = 0.6) -> float:
    """A fixed rate from the capacity measured in this run (60 % by default): loaded,
    not overloaded, on whatever machine the run finds."""
    if not capacity_rps > 0:
        raise RuntimeError("no capacity measured: cannot calibrate a rate")
    return fraction * capacity_rps


def flood_rate(capacity_rps: float, *, factor: float = 2.0) -> float:
    """A flood that contests the pool: ``factor`` (>= 2) times what the pool can serve
    of the flooded kind, measured in this run."""
    if factor < 2:
        raise ValueError("a flood below twice the capacity does not contest the pool")
    return factor * calibrated_rate(capacity_rps, fraction=1.0)


# --- what the host did during a block ------------------------------------------------

# /proc/stat's cpu line, in its order
_CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


@dataclass(frozen=True)
class HostCounters:
    """The machine's CPU time by kind (/proc/stat, all cores, in clock ticks) and
    PostgreSQL's checkpoint counters, read at one moment: two readings around a block
    tell a stall of that block caused by the host (time stolen by the hypervisor,
    I/O wait) or by a checkpoint from one the product caused."""

    cpu: dict[str, int]
    checkpoints: int | None
    checkpoint_buffers: int | None


def host_counters(database_url: str | None = None) -> HostCounters:
    """Read the counters now; the checkpoint counters stay None when PostgreSQL
    cannot be asked (the CPU figures are still worth having)."""
    with open("/proc/stat") as stat:
        values = stat.readline().split()[1:]
    cpu = dict(zip(_CPU_FIELDS, map(int, values), strict=False))
    checkpoints = buffers = None
    try:
        import psycopg

        with psycopg.connect(
            database_url or os.environ["DATABASE_URL"],
            autocommit=True,
            connect_timeout=2,
        ) as connection:
            # PostgreSQL 17 moved them to pg_stat_checkpointer
            for query in (
                "SELECT num_timed + num_requested, buffers_written "
                "FROM pg_stat_checkpointer",
                "SELECT checkpoints_timed + checkpoints_req, buffers_checkpoint "
                "FROM pg_stat_bgwriter",
            ):
                try:
                    checkpoints, buffers = connection.execute(query).fetchone()
                    break
                except psycopg.errors.UndefinedTable:
                    continue
    except Exception:  # noqa: BLE001 - a figure to explain stalls, not a check
        pass
    return HostCounters(cpu, checkpoints, buffers)


def host_delta(before: HostCounters, after: HostCounters) -> dict[str, Any]:
    """What happened between two readings: the share of all CPU time stolen by the
    hypervisor, spent waiting for I/O, and busy; checkpoints started and the buffers
    they wrote (None when unknown)."""
    spent = {
        name: after.cpu.get(name, 0) - before.cpu.get(name, 0) for name in _CPU_FIELDS
    }
    total = sum(spent.values()) or 1
    known = before.checkpoints is not None and after.checkpoints is not None
    return {
        "steal_share": round(spent["steal"] / total, 4),
        "iowait_share": round(spent["iowait"] / total, 4),
        "busy_share": round(1 - (spent["idle"] + spent["iowait"]) / total, 4),
        "checkpoints": after.checkpoints - before.checkpoints if known else None,
        "checkpoint_buffers": after.checkpoint_buffers - before.checkpoint_buffers
        if known
        else None,
    }


def describe_host(deltas: Sequence[dict[str, Any]]) -> str:
    """One line for a phase's blocks: steal, I/O wait and checkpoints per block."""
    return "; ".join(
        f"steal {d['steal_share']:.1%} iowait {d['iowait_share']:.1%} busy "
        f"{d['busy_share']:.0%}"
        + (f", {d['checkpoints']} checkpoint(s)" if d["checkpoints"] else "")
        for d in deltas
    )


# --- where the CPU goes during a block ---------------------------------------------

# A counter of CPU seconds used so far (cumulative, as the kernel's own counters): a
# block's share is its rise over the block.
CpuCounter = Callable[[], float]
# a reading of a changing set of processes is taken again this often at most
_CPU_READ_ATTEMPTS = 5


def processes_cpu_seconds(find: Callable[[], Iterable[psutil.Process]]) -> float:
    """CPU time (user and system) the processes ``find()`` returns have used so far,
    with the time of every child each of them has waited for (the kernel's
    cutime/cstime, psutil's ``children_user``/``children_system``).

    That is what makes a replaced process count: a gunicorn worker recycled during a
    block is gone from the tree at its end, and its whole time is in its master's
    reaped children's time from the moment the master waited for it (at once, on
    SIGCHLD). Its time before the block was in the reading before it (its own),
    after the block in the one after (its master's), so the rise is what it used
    during the block; its replacement started from nothing. Summing only the live
    workers at both ends would lose the recycled worker's time and subtract what it
    had used before the block. ``find`` must return whole trees (each process with
    its descendants), so that no ended process is counted in a parent left out.

    A process that ends while the set is read is in neither reading or in both (its
    own time and its parent's reaped time): the reading is taken again until the set
    is the same before and after it."""
    import psutil

    total = 0.0
    for _ in range(_CPU_READ_ATTEMPTS):
        processes = list(find())
        total, complete = 0.0, True
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                complete = False
                continue
            total += (
                times.user + times.system + times.children_user + times.children_system
            )
        if complete and {p.pid for p in find()} == {p.pid for p in processes}:
            break
    return total


def cpu_of(find: Callable[[], Iterable[psutil.Process]]) -> CpuCounter:
    """A ``CpuCounter`` of the processes ``find`` returns (``process_trees``,
    ``processes_named``)."""
    return lambda: processes_cpu_seconds(find)


def process_trees(pids: Iterable[int]) -> Callable[[], list[psutil.Process]]:
    """The processes ``pids`` and all their descendants, found anew at each call (a
    gunicorn master and the workers it has now)."""
    import psutil

    roots = [psutil.Process(pid) for pid in pids]

    def find() -> list[psutil.Process]:
        found: dict[int, psutil.Process] = {}
        for root in roots:
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue  # a root gone (a pool that died): the run says so elsewhere
            found |= {process.pid: process for process in tree}
        return list(found.values())

    return find


def processes_named(*names: str) -> Callable[[], list[psutil.Process]]:
    """Every process on the machine named one of ``names`` (a machine service's:
    ``postgres``, ``redis-server``) and its descendants (a Redis snapshot child is
    named otherwise), found anew at each call: a service's processes come and go.
    Only read (/proc), never signalled."""
    import psutil

    def find() -> list[psutil.Process]:
        found: dict[int, psutil.Process] = {}
        for process in psutil.process_iter(["name"]):
            if process.info["name"] in names and process.pid not in found:
                try:
                    tree = [process, *process.children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                found |= {member.pid: member for member in tree}
        return list(found.values())

    return find


def this_process_cpu_seconds() -> float:
    """CPU time this process has used so far, with every child it has waited for
    (a benchmark's load generators: each ``open_loop`` schedule's process, each wrk
    run). Children still running (the pools, the routers) are not in it."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def machine_busy_cpu_seconds() -> float:
    """CPU time all cores have spent busy so far (/proc/stat: user, nice, system,
    irq and softirq; not idle, I/O wait or time stolen by the hypervisor)."""
    with open("/proc/stat") as stat:
        values = stat.readline().split()[1:]
    ticks = dict(zip(_CPU_FIELDS, map(int, values), strict=False))
    busy = sum(ticks[name] for name in ("user", "nice", "system", "irq", "softirq"))
    return busy / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Where the machine's cores went during a benchmark's blocks, by kind of block
    (a phase): the CPU seconds of each process group (``groups``, each a
    ``CpuCounter``) over the blocks of each kind, and beside them ``machine``, the
    busy time of all cores, and ``other``, the machine's less the groups' (what no
    group holds: interrupts, the rest of the machine). A slow-down by CPU contention
    on a small machine is told apart from one inside the product only when it is
    known who else ran.

    ``with meter.block(kind):`` around each block; ``seconds()`` and ``cores()``
    (CPU seconds over the wall seconds of that kind's blocks) afterwards."""

    def __init__(self, groups: dict[str, CpuCounter]) -> None:
        if {"machine", "other"} & set(groups):
            raise ValueError("machine and other are the meter's own figures")
        self.groups = groups
        self.spent: dict[str, dict[str, float]] = {}
        self.wall: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        return {name: count() for name, count in self.groups.items()}

    @contextmanager
    def block(self, kind: str) -> Iterator[None]:
        """Count what the groups and the machine use while the body runs as a block
        of ``kind`` (a block that raises counts for nothing). The machine is read
        around the groups, so that its window holds theirs."""
        machine_before = machine_busy_cpu_seconds()
        before, began = self._read(), time.monotonic()
        yield
        after, ended = self._read(), time.monotonic()
        machine_after = machine_busy_cpu_seconds()
        names = [*self.groups, "machine"]
        spent = self.spent.setdefault(kind, dict.fromkeys(names, 0.0))
        for name in self.groups:
            spent[name] += after[name] - before[name]
        spent["machine"] += machine_after - machine_before
        self.wall[kind] = self.wall.get(kind, 0.0) + ended - began

    def seconds(self) -> dict[str, dict[str, float]]:
        """Per kind of block: each group's CPU seconds, ``other``, ``machine`` and the
        blocks' ``wall`` seconds. ``other`` is never below 0: the counters are read
        one after another and in clock ticks, so the groups can exceed the machine
        by a little when nothing else ran."""
        figures = {}
        for kind, spent in self.spent.items():
            groups = {name: spent[name] for name in self.groups}
            other = max(0.0, spent["machine"] - sum(groups.values()))
            figures[kind] = groups | {
                "other": other,
                "machine": spent["machine"],
                "wall": self.wall[kind],
            }
        return figures

    def cores(self) -> dict[str, dict[str, float]]:
        """Per kind of block: each group's, ``other``'s and the ``machine``'s cores
        (CPU seconds over the wall seconds of that kind's blocks)."""
        return {
            kind: {
                name: value / spent["wall"]
                for name, value in spent.items()
                if name != "wall"
            }
            for kind, spent in self.seconds().items()
        }


def describe_cpu(kind: str, cores: dict[str, float], cpus: int | None = None) -> str:
    """One line for a kind of block's ``CpuMeter.cores()``: each group's cores, then
    other, then the machine's of all its cores."""
    groups = [name for name in cores if name not in ("other", "machine")]
    return (
        f"cpu {kind} blocks: "
        + ", ".join(f"{name} {cores[name]:.2f}" for name in [*groups, "other"])
        + f", machine {cores['machine']:.2f} of {cpus or os.cpu_count()} cores"
    )


# --- the record of a run -----------------------------------------------------------


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def code_version(benchmark: str | None = None) -> dict[str, Any]:
    """The commit, whether the code differs from it, and a hash of the code's trees
    (``CODE_PATHS``): two runs with the same ``code`` measured the same code, even
    across commits that changed only documentation. For a ``benchmark`` the other
    benchmarks' own folders (``bench/<name>/`` with a ``run.py``) are left out: a
    fix to one benchmark does not drop every other's headline, while a change to
    the product or to the shared bench modules does."""
    results = "bench/results/"
    tree = _git("ls-tree", "-r", "HEAD", "--", *CODE_PATHS).splitlines()
    paths = [line.split("\t", 1)[-1] for line in tree]
    others = {
        path.split("/")[1]
        for path in paths
        if path.startswith("bench/") and path.count("/") == 2
        and path.endswith("/run.py")
    } - {benchmark}  # fmt: skip
    excluded = (results, *(f"bench/{name}/" for name in sorted(others) if benchmark))
    lines = [
        line
        for line, path in zip(tree, paths, strict=True)
        if not path.startswith(excluded)
    ]
    changes = _git(
        "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS,
        *(f":!{path}" for path in excluded),
    )  # fmt: skip
    return {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(changes),
        # the runs on record (bench/results) are not the code they measured
        "code": hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16],
    }


def machine() -> dict[str, Any]:
    """Cores, memory and the load average: a loaded machine is part of the result."""
    memory_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(memory_kb / 2**20, 1),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "hostname": socket.gethostname(),
    }


def _jsonable(value: Any) -> Any:
    """NaN and infinity as null (strict JSON readers reject them)."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# Environment variables that change what the product under test does: its settings
# (cms_project/settings) and gunicorn's pool. A run with one of them set is recorded
# with it and is not a default run: an override (a shorter burst, say) must never pass
# for the product's defaults. Where the services are (DATABASE_URL, REDIS_URL) and
# where files go do not change what is measured.
SETTING_PREFIXES = ("CMS_", "GUNICORN_", "DB_", "CELERY_", "REDIS_", "SECURE_")
SETTING_NAMES = frozenset({"WEB_CONCURRENCY", "DEBUG"})
NOT_SETTINGS = frozenset(
    {"REDIS_URL", "CMS_VAR_DIR", "CMS_KEEP_SERVICES", "CMS_ADVISORY_DB"}
)


def product_settings(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The product's settings given in the environment (``os.environ`` by default)."""
    environ = os.environ if environ is None else environ
    return {
        name: value
        for name, value in sorted(environ.items())
        if (name.startswith(SETTING_PREFIXES) or name in SETTING_NAMES)
        and name not in NOT_SETTINGS
    }


class Run:
    """One run of one benchmark: when and on what it ran, its validity, its figures.

    ``check(condition, reason)`` records a reason the run is not valid; ``finish``
    writes the record and prints either ``RESULT key=value ...`` (valid) or
    ``INVALID reason; ...`` and returns the exit code (0 only when valid)."""

    def __init__(
        self, name: str, parser: argparse.ArgumentParser, args: argparse.Namespace
    ) -> None:
        self.name = name
        self.started = datetime.now(UTC)
        self.machine = machine()
        self.code = code_version(name)
        self.args = dict(vars(args))
        self.settings = product_settings()
        defaults = {key: parser.get_default(key) for key in self.args}
        self.default_args = self.args == defaults and not self.settings
        self.problems: list[str] = []
        self.notes: list[str] = []
        out(
            f"== {name}: {self.started:%Y-%m-%d %H:%M:%S} UTC, commit "
            f"{self.code['commit'][:10]}{' (dirty)' if self.code['dirty'] else ''}, "
            f"{self.machine['cpus']} cores, load average "
            f"{self.machine['load_average'][0]:.2f}"
            + ("" if self.default_args else ", non-default arguments")
            + "".join(f", {name}={value}" for name, value in self.settings.items())
        )

    def check(self, condition: bool, reason: str) -> bool:
        if not condition:
            self.problems.append(reason)
            out(f"!! {reason}")
        return condition

    def note(self, text: str) -> None:
        self.notes.append(text)
        out(f"note: {text}")

    def check_p99(self, label: str, samples: int) -> bool:
        return self.check(
            samples >= MIN_P99_SAMPLES,
            f"{label}: {samples} samples, a p99 needs at least {MIN_P99_SAMPLES}",
        )

    def check_rate(self, label: str, asked: float, achieved: float) -> bool:
        """Fixed-rate load: the client kept up with the rate it was asked for."""
        return self.check(
            achieved >= MIN_ACHIEVED_RATE_SHARE * asked,
            f"{label}: the client sent {achieved:.1f} req/s of {asked:.1f} asked "
            f"(below {MIN_ACHIEVED_RATE_SHARE:.0%}): the load generator could not "
            "keep up",
        )

    def check_open_loop(
        self, label: str, result, *, over_capacity_by_design: bool = False
    ) -> bool:
        """An open-loop result (bench.loadgen.OpenLoopResult): the asked rate was
        offered, on time. Two ways to fail, told apart by the client's own lag: the
        client itself was late (starved of CPU), or every connection the schedule may
        use was waiting on the server, so the rest of the requests went out late
        (their wait counts as latency, but the rate asked was not offered).

        ``over_capacity_by_design``: a load the scenario asks of a server that cannot
        carry it (a spike beyond one worker, sent to one worker). Its connections
        then wait on the server by design; each request's latency still runs from
        the moment it was due, so its wait at the client is counted as if it had
        queued at the server. Only the client's own lag invalidates such a run; the
        rate it could offer is noted."""
        lag = result.client_lag_p99_ms
        on_time = self.check(
            not lag > MAX_CLIENT_LAG_P99_MS,
            f"{label}: the client sent late by itself (p99 {lag:.1f} ms, limit "
            f"{MAX_CLIENT_LAG_P99_MS:.0f} ms): the load generator was starved",
        )
        asked, achieved = result.asked_rate, result.achieved_rate
        if over_capacity_by_design:
            self.note(
                f"{label}: over capacity by design, {achieved:.1f} req/s sent of "
                f"{asked:.1f} asked (latency counted from each request's due time)"
            )
            return on_time
        offered = self.check(
            achieved >= MIN_ACHIEVED_RATE_SHARE * asked,
            f"{label}: {achieved:.1f} req/s sent of {asked:.1f} asked (below "
            f"{MIN_ACHIEVED_RATE_SHARE:.0%}): "
            + (
                "the load generator could not keep up"
                if not on_time
                else f"all {result.schedule.connections} connections were waiting "
                "on the server"
            ),
        )
        return on_time and offered

    @property
    def valid(self) -> bool:
        return not self.problems

    def finish(self, result: dict[str, Any], figures: dict[str, Any]) -> int:
        """Write the record; print RESULT when valid, else INVALID. Exit code."""
        finished = datetime.now(UTC)
        record = {
            "benchmark": self.name,
            "started": self.started.isoformat(timespec="seconds"),
            "finished": finished.isoformat(timespec="seconds"),
            **self.code,
            "machine": self.machine,
            "machine_at_end": {"load_average": machine()["load_average"]},
            "args": self.args,
            "settings": self.settings,
            "default_args": self.default_args,
            "valid": self.valid,
            "problems": self.problems,
            "notes": self.notes,
            "result": result,
            "figures": figures,
        }
        folder = RESULTS / self.name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.started:%Y%m%dT%H%M%SZ}.json"
        path.write_text(json.dumps(_jsonable(record), indent=2, allow_nan=False))
        shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        out(f"== on record: {shown}")
        if not self.valid:
            out("INVALID " + "; ".join(self.problems))
            return 1
        pairs = (f"{key}={format_value(value)}" for key, value in result.items())
        out("RESULT " + " ".join(pairs))
        return 0


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "nan"
        return f"{value:.3f}"
    return str(value)


def timed(function: Callable[[], T]) -> tuple[T, float]:
    began = time.perf_counter()
    value = function()
    return value, time.perf_counter() - began
