"""A small HTTP load generator for the benchmarks (loopback only).

Closed loop (``closed_loop``, ``sweep``): threads each send one request at a time to
127.0.0.1 with a Host header, for a fixed duration, and record latency and status. Used
where two set-ups are compared in one run, so what matters is that both sides are
measured the same way.

Open loop (``open_loop``): each ``Schedule`` sends at a fixed rate whatever the server
does, and a request's latency is measured from the moment it was due, not from when a
connection was free to send it. A slow server therefore shows up as latency (queueing
included) instead of as fewer requests, which a closed loop would hide. Each schedule
runs in a process of its own, so one tenant's flood cannot slow the measurement of
another tenant's requests through the client's own GIL.
"""

import http.client
import itertools
import multiprocessing
import statistics
import threading
import time
from dataclasses import dataclass, field

from bench.common import percentile


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

    def request_target(self, index: int) -> tuple[str, dict[str, str]]:
        path = f"{self.path}?b={index}" if self.bust_cache else self.path
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

    @property
    def requests(self) -> int:
        return len(self.statuses)

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
    results: list[tuple[float, float, int]] = []
    lock = threading.Lock()

    def connection(first: int) -> None:
        mine = []
        for index in range(first, total, schedule.connections):
            due = start_at + index * interval
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
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
            mine.append((due - start_at, (time.time() - due) * 1000, status))
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
        due_s=[due for due, _, _ in results],
        latencies_ms=[latency for _, latency, _ in results],
        statuses=[status for _, _, status in results],
    )


def _schedule_process(port: int, schedule: Schedule, seconds: float, pipe) -> None:
    """Child process: say it is ready, wait for the common start time, run."""
    pipe.send("ready")
    start_at = pipe.recv()
    pipe.send(_run_schedule(port, schedule, start_at, seconds))
    pipe.close()


def open_loop(
    port: int, schedules: list[Schedule], *, seconds: float, lead: float = 0.5
) -> list[OpenLoopResult]:
    """Run every schedule at once for ``seconds``, each in its own process. They start
    ``lead`` seconds after the last process is ready (so a slow process start does not
    read as the server's latency), each a fraction of its interval after the one
    before."""
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
