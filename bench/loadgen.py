"""The HTTP load generator of the benchmarks (loopback only).

Throughput at a fixed concurrency (``wrk_closed_loop``): wrk, Debian's package, written
in C and far cheaper per request than any Python client, so the client is not what is
measured. ``ensure_wrk`` installs it with apt-get when it is missing and fails with a
clear message when it cannot. A Lua script (bench/wrk_targets.lua) gives each request
its Host header, path and ``X-Forwarded-For`` from a list of targets (many tenants,
many pages, many clients), optionally a cache-busting query string, and reports the
count of every status.

Throughput at a fixed rate (``wrk_paced``): the same wrk and script, each thread sending
its requests on a fixed schedule (the script's ``delay()`` hands every request the
thread's next slot). It is for floods far beyond what a Python client can send; it
says what rate it really sent (``WrkResult.achieved_rate``) beside the asked one, and
its latency figures mean little (a request's latency is counted from when it was
sent, not from its slot): only counts and statuses do.

The Python closed loop (``closed_loop``, ``sweep``) remains for warming caches and for
scripts that need per-request logic.

Open loop (``open_loop``): each ``Schedule`` sends at a fixed rate whatever the server
does, and a request's latency is measured from the moment it was due, not from when a
connection was free to send it. A slow server therefore shows up as latency (queueing
included) instead of as fewer requests, which a closed loop would hide. Each schedule
runs in a process of its own, so one tenant's flood cannot slow the measurement of
another tenant's requests through the client's own GIL. wrk2 (wrk with a fixed rate)
is neither in Debian nor on PyPI, so this stays in Python; each result therefore says
what rate the client really sent (``achieved_rate``) and how late the client itself
was (``client_lag_ms``: from the moment a request was due and a connection free to the
moment it was sent), and a benchmark rejects a run whose client fell behind.
"""

import http.client
import itertools
import json
import math
import multiprocessing
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import percentile
from cms_project.debian import ToolMissing, ensure_tool

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk_targets.lua"


class LoadGeneratorMissing(RuntimeError):
    """wrk is not installed and could not be installed."""


def ensure_wrk() -> str:
    """The path of wrk, installed from Debian when missing. Raises
    ``LoadGeneratorMissing`` when that is impossible: a benchmark must not fall back
    silently to a client that would be the bottleneck."""
    try:
        return ensure_tool("wrk")
    except ToolMissing as exc:
        raise LoadGeneratorMissing(str(exc)) from exc


@dataclass(frozen=True)
class Target:
    """One kind of request: Host header, path and (optionally) the client's address
    in ``X-Forwarded-For`` (the server must trust 127.0.0.1 as its proxy)."""

    host: str
    path: str = "/"
    client: str = ""


@dataclass
class WrkResult:
    """One wrk run: requests completed in ``seconds``, latency percentiles (ms) from
    wrk's histogram over all of them, socket errors and the count of every status."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int]
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int
    non_2xx_3xx: int
    # the rate a paced run was asked for (0: a closed loop)
    asked_rate: float = 0.0
    connections: int = 0
    # CPU time wrk itself used (user and system)
    cpu_seconds: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def achieved_rate(self) -> float:
        """Answers per second over the run (a paced run that kept up: the asked
        rate)."""
        return self.rps

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def ok_rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def not_ok(self) -> int:
        """Answers other than 2xx (all of them when statuses were not counted:
        wrk's own count of 4xx/5xx) plus requests that got no answer."""
        if self.statuses:
            answered_badly = self.requests - self.ok
        else:
            answered_badly = self.non_2xx_3xx
        # a sync worker closes every connection after its answer, which wrk counts
        # as a read error: those are not lost requests
        return answered_badly + self.connect_errors + self.write_errors + self.timeouts


def wrk_closed_loop(
    port: int,
    targets: list[Target],
    *,
    seconds: float,
    connections: int = 8,
    threads: int = 2,
    bust_cache: bool = False,
    count_statuses: bool = True,
    wrk: str | None = None,
) -> WrkResult:
    """``connections`` connections each sending one request after the other for
    ``seconds``, the requests taking ``targets`` in turn."""
    return _run_wrk(
        port,
        targets,
        seconds=seconds,
        connections=connections,
        threads=threads,
        bust_cache=bust_cache,
        count_statuses=count_statuses,
        rate=None,
        wrk=wrk,
    )


def paced_connections(rate: float) -> int:
    """Connections enough for a paced run at ``rate``: each may take 10 ms for an
    answer before the schedule waits for a free one (at least 8)."""
    return max(8, math.ceil(rate / 100))


def wrk_paced(
    port: int,
    targets: list[Target],
    *,
    rate: float,
    seconds: float,
    connections: int | None = None,
    threads: int = 2,
    bust_cache: bool = False,
    count_statuses: bool = True,
    wrk: str | None = None,
) -> WrkResult:
    """``rate`` requests per second for ``seconds``, whatever the server answers, the
    requests taking ``targets`` in turn, on ``connections`` connections
    (``paced_connections`` by default).

    Each of the ``threads`` sends one request every ``threads / rate`` seconds on
    whichever of its connections is free; a request whose slot has passed (every
    connection was waiting on the server) goes at once. wrk counts its ``delay()``
    from the previous answer, so a fixed per-connection delay would slow down with
    the server; the script reads the clock instead. The result's ``achieved_rate``
    says whether it kept up; a caller must check it."""
    if not rate > 0:
        raise ValueError(f"a paced run needs a rate above 0, not {rate!r}")
    connections = connections or paced_connections(rate)
    result = _run_wrk(
        port,
        targets,
        seconds=seconds,
        connections=connections,
        threads=threads,
        bust_cache=bust_cache,
        count_statuses=count_statuses,
        rate=rate,
        wrk=wrk,
    )
    result.asked_rate = rate
    return result


def _run_wrk(
    port: int,
    targets: list[Target],
    *,
    seconds: float,
    connections: int,
    threads: int,
    bust_cache: bool,
    count_statuses: bool,
    rate: float | None,
    wrk: str | None,
) -> WrkResult:
    """wrk with bench/wrk_targets.lua; paced at ``rate`` when given."""
    wrk = wrk or ensure_wrk()
    threads = max(1, min(threads, connections))
    # each thread's interval between two requests, in ms (the script's pace)
    interval = f"{threads / rate * 1000:.6f}" if rate else "nil"
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as folder:
        script = Path(folder) / "targets.lua"
        script.write_text(
            f"local COUNT_STATUSES = {'true' if count_statuses else 'false'}\n"
            f"local THREAD_INTERVAL_MS = {interval}\n" + WRK_SCRIPT.read_text()
        )
        listing = Path(folder) / "targets.tsv"
        listing.write_text(
            "".join(f"{t.host}\t{t.path}\t{t.client}\n" for t in targets)
        )
        command = [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/",
            "--",
            str(listing),
            "bust" if bust_cache else "",
        ]
        returncode, stdout, stderr, cpu_seconds = _run_with_cpu(
            command, Path(folder), timeout=seconds + 60
        )
    _count_wrk_cpu(cpu_seconds)
    line = next((x for x in stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {returncode}): {stderr.strip()[-500:]}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    errors = data["errors"]
    latency = data["latency_us"]
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        statuses={int(status): n for status, n in data["statuses"].items()},
        connect_errors=errors["connect"],
        read_errors=errors["read"],
        write_errors=errors["write"],
        timeouts=errors["timeout"],
        non_2xx_3xx=errors["status"],
        connections=connections,
        cpu_seconds=cpu_seconds,
    )


_wrk_cpu = {"seconds": 0.0}
_wrk_cpu_lock = threading.Lock()


def _count_wrk_cpu(seconds: float) -> None:
    with _wrk_cpu_lock:
        _wrk_cpu["seconds"] += seconds


def wrk_cpu_seconds() -> float:
    """CPU time (user and system) of every wrk this process has run to its end so
    far (a ``bench.common.CpuCounter``: the load generator's share of a block)."""
    with _wrk_cpu_lock:
        return _wrk_cpu["seconds"]


def _run_with_cpu(
    command: list[str], folder: Path, *, timeout: float
) -> tuple[int, str, str, float]:
    """Run ``command`` to its end: exit code, output, errors and the CPU time it
    used (user and system, from ``wait4``): the load generator shares the machine
    with what it measures, and its own cost must be on record."""
    stdout_path, stderr_path = folder / "stdout", folder / "stderr"
    with stdout_path.open("w") as stdout, stderr_path.open("w") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr)
    killer = threading.Timer(timeout, process.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        killer.cancel()
    # reaped here, not by Popen: tell it, so that it never waits for it again
    process.returncode = os.waitstatus_to_exitcode(status)
    return (
        process.returncode,
        stdout_path.read_text(errors="replace"),
        stderr_path.read_text(errors="replace"),
        usage.ru_utime + usage.ru_stime,
    )


@dataclass
class LoadResult:
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else 0.0


def closed_loop(
    port: int, hosts: list[str], *, path: str = "/", threads: int = 4, seconds: float
) -> LoadResult:
    """Requests round-robin over ``hosts`` until ``seconds`` have passed."""
    result = LoadResult(seconds=seconds)
    lock = threading.Lock()
    counter = itertools.count()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        latencies, statuses, errors = [], {}, 0
        while time.monotonic() < deadline:
            host = hosts[next(counter) % len(hosts)]
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", path, headers={"Host": host})
                response = conn.getresponse()
                response.read()
                conn.close()
            except OSError:
                errors += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[response.status] = statuses.get(response.status, 0) + 1
        with lock:
            result.latencies_ms.extend(latencies)
            result.errors += errors
            for status, count in statuses.items():
                result.statuses[status] = result.statuses.get(status, 0) + count

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return result


def sweep(
    port: int, hosts: list[str], *, repeat: int = 1, threads: int = 4
) -> LoadResult:
    """Every host exactly ``repeat`` times (e.g. to warm each tenant's caches)."""
    queue = [host for host in hosts for _ in range(repeat)]
    result = LoadResult(seconds=0.0)
    lock = threading.Lock()
    position = itertools.count()
    started = time.monotonic()

    def worker() -> None:
        while (index := next(position)) < len(queue):
            began = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/", headers={"Host": queue[index]})
                response = conn.getresponse()
                response.read()
                conn.close()
            except OSError:
                with lock:
                    result.errors += 1
                continue
            with lock:
                result.latencies_ms.append((time.perf_counter() - began) * 1000)
                result.statuses[response.status] = (
                    result.statuses.get(response.status, 0) + 1
                )

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    result.seconds = time.monotonic() - started
    return result


@dataclass(frozen=True)
class Schedule:
    """``rate`` requests per second to ``host``, with at most ``connections`` in
    flight (a request due while all are busy waits, and the wait counts); ``port``,
    when set, sends this schedule to another server than ``open_loop``'s.

    ``clients``: the requests name these client addresses in turn in
    ``X-Forwarded-For`` (the server must trust 127.0.0.1 as a proxy), so that one
    schedule can be many visitors or exactly one. ``bust_cache``: each request adds a
    query string of its own (``?b=<n>``), as a cache-busting flood does."""

    host: str
    rate: float
    path: str = "/"
    connections: int = 16
    timeout: float = 10.0
    port: int | None = None
    clients: tuple[str, ...] = ()
    bust_cache: bool = False
    # several pages of the tenant, taken in turn (``path`` when empty)
    paths: tuple[str, ...] = ()

    def request_target(self, index: int) -> tuple[str, dict[str, str]]:
        path = self.paths[index % len(self.paths)] if self.paths else self.path
        path = f"{path}?b={index}" if self.bust_cache else path
        headers = {"Host": self.host}
        if self.clients:
            headers["X-Forwarded-For"] = self.clients[index % len(self.clients)]
        return path, headers


@dataclass
class OpenLoopResult:
    """Per request, in the order they were due: when it was due (seconds after the
    start), its latency from that moment (ms) and its status (0: no response)."""

    schedule: Schedule
    seconds: float
    due_s: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    # how late the client itself sent each request (due and a connection free, to
    # sent): the load generator's own delay, not the server's
    client_lag_ms: list[float] = field(default_factory=list)
    # how long sending took: the schedule's own span (requests / rate), or longer
    # when the client fell behind (the last request sent late)
    sending_span_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.statuses)

    @property
    def asked_rate(self) -> float:
        return self.schedule.rate

    @property
    def achieved_rate(self) -> float:
        """Requests sent per second over the time it took to send them (a client
        that falls behind takes longer than the schedule)."""
        if not self.requests or not self.sending_span_s:
            return 0.0
        return self.requests / self.sending_span_s

    @property
    def client_lag_p99_ms(self) -> float:
        return percentile(self.client_lag_ms, 99)

    def count(self, *statuses: int) -> int:
        return sum(1 for status in self.statuses if status in statuses)

    def latencies_of(self, *statuses: int) -> list[float]:
        return [
            latency
            for latency, status in zip(self.latencies_ms, self.statuses, strict=True)
            if status in statuses
        ]


def _run_schedule(
    port: int, schedule: Schedule, start_at: float, seconds: float
) -> OpenLoopResult:
    """One schedule, in a child process: connection ``k`` sends requests k, k+n,
    k+2n, ... each at its due time ``start_at + i / rate`` (wall clock, shared by the
    processes), or at once if it is already late."""
    port = schedule.port or port
    total = int(seconds * schedule.rate)
    interval = 1.0 / schedule.rate
    results: list[tuple[float, float, int, float, float]] = []
    lock = threading.Lock()

    def connection(first: int) -> None:
        mine = []
        for index in range(first, total, schedule.connections):
            due = start_at + index * interval
            free = time.time()
            wait = due - free
            if wait > 0:
                time.sleep(wait)
            sent = time.time()
            lag_ms = (sent - max(due, free)) * 1000
            try:
                conn = http.client.HTTPConnection(
                    "127.0.0.1", port, timeout=schedule.timeout
                )
                path, headers = schedule.request_target(index)
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                conn.close()
                status = response.status
            except OSError:
                status = 0
            mine.append(
                (due - start_at, (time.time() - due) * 1000, status, lag_ms, sent)
            )
        with lock:
            results.extend(mine)

    pool = [
        threading.Thread(target=connection, args=(k,))
        for k in range(min(schedule.connections, total))
    ]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    results.sort()
    return OpenLoopResult(
        schedule=schedule,
        seconds=seconds,
        due_s=[row[0] for row in results],
        latencies_ms=[row[1] for row in results],
        statuses=[row[2] for row in results],
        client_lag_ms=[row[3] for row in results],
        sending_span_s=max(
            total / schedule.rate,
            max((row[4] for row in results), default=start_at) - start_at + interval,
        )
        if total
        else 0.0,
    )


def _schedule_process(port: int, schedule: Schedule, seconds: float, pipe) -> None:
    """Child process: say it is ready, wait for the common start time, run."""
    pipe.send("ready")
    start_at = pipe.recv()
    pipe.send(_run_schedule(port, schedule, start_at, seconds))
    pipe.close()


def open_loop(
    port: int,
    schedules: list[Schedule],
    *,
    seconds: float,
    lead: float = 0.5,
    on_start: Callable[[float], None] | None = None,
) -> list[OpenLoopResult]:
    """Run every schedule at once for ``seconds``, each in its own process. They start
    ``lead`` seconds after the last process is ready (so a slow process start does not
    read as the server's latency), each a fraction of its interval after the one
    before. ``on_start`` is told that start time (wall clock) before the schedules
    are, so that a load beside them (a wrk flood) can start with them."""
    context = multiprocessing.get_context("spawn")
    children = []
    for schedule in schedules:
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=_schedule_process, args=(port, schedule, seconds, child_end)
        )
        process.start()
        children.append((process, parent_end))
    try:
        for _, pipe in children:
            if pipe.recv() != "ready":
                raise RuntimeError("a load generator process did not start")
        start_at = time.time() + lead
        if on_start is not None:
            on_start(start_at)
        # staggered, so that schedules of one rate do not send in lockstep
        for index, (schedule, (_, pipe)) in enumerate(
            zip(schedules, children, strict=True)
        ):
            pipe.send(start_at + index / len(schedules) / schedule.rate)
        return [pipe.recv() for _, pipe in children]
    finally:
        for process, _ in children:
            process.join(timeout=seconds + 30)
            if process.is_alive():
                process.kill()
