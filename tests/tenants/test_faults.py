"""Dependencies hung and killed under a real gunicorn pool: the services are this
test's own (tests/private_stack.py), stopped with SIGSTOP, resumed with SIGCONT and
killed with SIGKILL by the process ids it started.

What a visitor must see: cached pages served while PostgreSQL hangs, a fast 503 with
Retry-After for pages that need it, normal latency while Redis hangs or is dead, the
breakers (in /readyz and the metrics) open and closed again with no restart, and no
API write that was answered 2xx lost.
"""

import http.client
import json
import signal
import threading
import time

import pytest

from tests.integration import free_port
from tests.private_stack import PrivateStack

ACME = "acme.localhost"
# the Writer's credentials: an API token made by the stack fixture
API_AUTH: dict[str, str] = {}
METRICS_TOKEN = "fault-metrics"


def request(port, method, path, *, host=ACME, body=None, headers=None, timeout=10):
    """(status, headers, body, seconds)."""
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
        return (
            response.status,
            dict(response.getheaders()),
            content,
            time.perf_counter() - started,
        )
    except (OSError, http.client.HTTPException):
        return 0, {}, b"", time.perf_counter() - started
    finally:
        conn.close()


def readyz(port):
    status, _, body, seconds = request(port, "GET", "/readyz", host="localhost")
    return status, json.loads(body) if body else {}, seconds


def breaker_gauge(port, dependency):
    _, _, body, _ = request(
        port,
        "GET",
        "/metrics",
        host="localhost",
        headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
    )
    for line in body.decode().splitlines():
        if line.startswith(
            f'cms_dependency_breaker_state{{dependency="{dependency}"}}'
        ):
            return float(line.rsplit(" ", 1)[1])
    return None


def stored_pages(stack, schema, page_ids):
    """Which of ``page_ids`` exist in the tenant's schema (drafts included)."""
    import psycopg

    url = stack.database_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f'SELECT id FROM "{schema}".wagtailcore_page WHERE id = ANY(%s)',
            [list(page_ids)],
        ).fetchall()
    return {row[0] for row in rows}


class Writer(threading.Thread):
    """Creates articles through the API until stopped; remembers the ids of those
    answered 201."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stopped = threading.Event()
        self.acknowledged = []
        self.answers = []

    def run(self):
        number = 0
        while not self.stopped.is_set():
            number += 1
            status, _, body, seconds = request(
                self.port,
                "POST",
                "/api/v2/articles/",
                # drafts: publishing would purge the page cache this test reads
                body={"title": f"Fault write {time.time_ns()}", "publish": False},
                headers={"Authorization": API_AUTH["header"]},
            )
            self.answers.append((status, seconds))
            if status == 201:
                self.acknowledged.append(json.loads(body)["id"])
            time.sleep(0.2)


@pytest.fixture(scope="module")
def stack():
    stack = PrivateStack()
    try:
        stack.start()
        # every request here comes from 127.0.0.1: the per-client share of public
        # reads must not refuse the load these tests measure faults with
        for plan in ("pro", "starter"):
            stack.manage(
                "plans",
                "update",
                plan,
                "--limit",
                "public_reads_per_client_per_minute=1000000",
                "--limit",
                "public_reads_per_minute=1000000",
            )
        API_AUTH["header"] = f"Bearer {stack.api_token('acme')}"
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
def pool(stack):
    port = free_port()
    stack.start_gunicorn(
        port,
        workers=3,
        CMS_RESERVED_WORKERS="1",
        CMS_BREAKER_COOLDOWN_SECONDS="1",
        CMS_TENANT_CACHE_CHECK_SECONDS="0.5",
    )
    # the home page cached by one worker; the others have not served acme yet: they
    # must answer it from the host map each worker loads when it starts, also while
    # PostgreSQL hangs (the first test)
    request(port, "GET", "/")
    status, headers, _, _ = request(port, "GET", "/")
    assert status == 200 and headers.get("X-Page-Cache") == "hit", headers
    return port


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def test_postgres_hung_fast_503_cached_pages_served_and_recovery(stack, pool):
    writer = Writer(pool)
    writer.start()
    time.sleep(1)
    assert request(pool, "GET", "/")[1].get("X-Page-Cache") == "hit"
    stack.signal_postgres(signal.SIGSTOP)
    hung_at = time.monotonic()
    try:
        cached, uncached = [], []
        # each worker pays one statement timeout plus one connect timeout (4 s)
        # before its breaker opens
        while time.monotonic() - hung_at < 12:
            cached.append(request(pool, "GET", "/"))
            uncached.append(request(pool, "GET", "/search/?q=rockets"))
        ready_status, ready, ready_seconds = readyz(pool)
        gauge = breaker_gauge(pool, "database")
    finally:
        stack.signal_postgres(signal.SIGCONT)
    resumed_at = time.monotonic()

    # cached pages need no database: all served, at normal latency
    assert all(status == 200 for status, *_ in cached), [
        (index, status, round(seconds, 2), headers, body[:300])
        for index, (status, headers, body, seconds) in enumerate(cached)
        if status != 200
    ]
    assert max(seconds for *_, seconds in cached) < 2.5
    # uncached pages: a 503 with Retry-After, fast once the breaker is open
    statuses = [status for status, *_ in uncached]
    assert set(statuses) == {503}, statuses
    assert all("Retry-After" in headers for _, headers, *_ in uncached)
    assert "Acme" in uncached[-1][2].decode()
    # once the breaker is open: at once, but for one probe per worker and cool-down
    late = sorted(seconds for *_, seconds in uncached[2 * len(uncached) // 3 :])
    assert late[len(late) // 2] < 0.2, late
    assert late[-1] < 1.0, late
    # the breaker shows
    assert ready_status == 503
    assert ready["checks"]["database"] in ("open", "fail")
    assert ready_seconds < 3.5
    assert gauge == 2.0

    # recovery without a restart, within seconds
    wait_until(
        lambda: request(pool, "GET", "/search/?q=rockets")[0] == 200,
        5,
        "uncached pages served again",
    )
    wait_until(lambda: readyz(pool)[0] == 200, 10, "/readyz ready again")
    # breakers are per process: a worker whose last call failed just before the
    # resume keeps its breaker open for the cool-down, until its next call probes
    wait_until(
        lambda: every_answer(
            lambda: readyz(pool),
            lambda status, body, _: (
                status == 200 and body["breakers"]["database"] == "closed"
            ),
        ),
        10,
        "every worker's database breaker closed again",
    )
    recovered = time.monotonic() - resumed_at
    assert recovered < 10
    time.sleep(1)
    writer.stopped.set()
    writer.join(15)

    # every write answered 201 is there
    assert writer.acknowledged
    assert stored_pages(stack, "acme", writer.acknowledged) == set(writer.acknowledged)
    assert not [s for s, _ in writer.answers if s not in (201, 503, 429)], (
        writer.answers
    )


def _latencies_while(pool, seconds, *, settle=2.0):
    """Answers in the first ``settle`` seconds (each worker's breaker opens after
    two socket timeouts), and after."""
    early, late = [], []
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        answers = early if time.monotonic() - started < settle else late
        answers.append(request(pool, "GET", "/"))
        answers.append(request(pool, "GET", "/search/?q=rockets"))
    return early, late


def p95(answers):
    latencies = sorted(seconds for *_, seconds in answers)
    return latencies[int(len(latencies) * 0.95)]


def every_answer(ask, good, times: int = 9) -> bool:
    """``good`` holds for ``times`` answers in a row (the pool's 3 workers each
    likely answer some of them)."""
    return all(good(*ask()) for _ in range(times))


def rendered_page_p95(pool, seconds=4):
    """What the same pages cost rendered by Django here (the machine may be busy):
    the yardstick for "normal latency" while Redis is out and nothing is cached. A
    session cookie keeps the home page out of the page cache."""
    # a test before may have left a worker's breaker open for its cool-down
    wait_until(
        lambda: every_answer(
            lambda: request(pool, "GET", "/search/?q=rockets"),
            lambda status, *_: status == 200,
        ),
        15,
        "every worker serving uncached pages",
    )
    answers = []
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        answers.append(
            request(pool, "GET", "/", headers={"Cookie": "cms_session=none"})
        )
        answers.append(request(pool, "GET", "/search/?q=rockets"))
    assert all(status == 200 for status, *_ in answers)
    return p95(answers)


def test_redis_hung_pages_at_normal_latency_and_limits_resume(stack, pool):
    normal = rendered_page_p95(pool)
    stack.redis_process.send_signal(signal.SIGSTOP)
    try:
        early, late = _latencies_while(pool, 8)
        ready_status, ready, ready_seconds = readyz(pool)
    finally:
        stack.redis_process.send_signal(signal.SIGCONT)

    answers = early + late
    assert all(status == 200 for status, *_ in answers), [a[0] for a in answers]
    # at most two socket timeouts (0.25 s) per worker while its breaker opens...
    assert max(seconds for *_, seconds in early) < 2 * normal + 0.75
    # ...then no request waits on Redis: pages cost what a rendered page costs
    # (plus, once per worker and cool-down, a 0.1 s PING probe)
    assert p95(late) < 1.5 * normal + 0.15, (p95(late), normal)
    assert ready_status == 503
    assert ready["checks"]["redis"] in ("open", "fail")
    assert ready_seconds < 2.5

    # the hot path (admission, limits, page cache, metering) resumes by itself
    wait_until(
        lambda: request(pool, "GET", "/")[1].get("X-Page-Cache") == "hit",
        5,
        "cache hits from Redis again",
    )
    wait_until(lambda: readyz(pool)[0] == 200, 10, "/readyz ready again")


def test_redis_killed_and_restarted(stack, pool):
    normal = rendered_page_p95(pool)
    stack.kill_redis()
    try:
        early, late = _latencies_while(pool, 5)
    finally:
        stack.start_redis()

    answers = early + late
    assert all(status == 200 for status, *_ in answers), [a[0] for a in answers]
    # a refused connection fails at once: no settling time needed
    assert p95(answers) < 1.5 * normal + 0.15, (p95(answers), normal)
    wait_until(
        lambda: (
            request(pool, "GET", "/")[0] == 200
            and request(pool, "GET", "/")[1].get("X-Page-Cache") == "hit"
        ),
        8,
        "cache hits after Redis restarted",
    )
