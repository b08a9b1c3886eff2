"""A small closed-loop HTTP load generator for the benchmarks (loopback only).

Threads each send one request at a time to 127.0.0.1 with a Host header, for a fixed
duration, and record latency and status. Used where two set-ups are compared in one
run, so what matters is that both sides are measured the same way.
"""

import http.client
import itertools
import statistics
import threading
import time
from dataclasses import dataclass, field


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
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

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
