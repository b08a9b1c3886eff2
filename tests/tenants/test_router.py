"""The edge router (tenants.pods.router): a real HAProxy in front of two stand-in pods.

Each pod is a small HTTP server on loopback that names itself and echoes the Host and
X-Forwarded-For it received, closing every connection as gunicorn's sync workers
do. HAProxy comes from Debian (installed when missing and we are root); under
CI=true a missing HAProxy fails these tests (tests.ci_plugin).
"""

import http.client
import http.server
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.test import Client

from cms_project import debian
from tenants.errors import InvalidDomain
from tenants.pods import router
from tenants.pods.router import (
    EdgeLimit,
    RouterCommandFailed,
    RouterSocket,
    RouterUnavailable,
)
from tests import integration
from tests.ci_plugin import tool_unavailable
from tests.integration import free_port

HOSTS = {"a.example.test": "pod1", "b.example.test": "pod2"}
# the tests' own address: its X-Forwarded-For names the client (127.0.0.2 is not)
TRUSTED_PROXIES = ("127.0.0.1/32",)


class PodHandler(http.server.BaseHTTPRequestHandler):
    """A pod's pool in miniature: HTTP/1.0, one request per connection."""

    server: "PodServer"

    def do_GET(self) -> None:
        if self.path == router.HEALTH_CHECK_PATH:
            # like the app's gate: /healthz exists on the operator's public hosts,
            # any other host the pod does not serve gets a 404
            if self.headers.get("Host") == router.HEALTH_CHECK_HOST:
                time.sleep(self.server.health_delay)
                self._answer(b'{"status": "alive"}')
            else:
                self.send_error(404)
            return
        self.server.requests.append(self.headers.get("Host", ""))
        self._answer(
            f"{self.server.pod} host={self.headers.get('Host')} "
            f"xff={self.headers.get('X-Forwarded-For')}".encode()
        )

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle(self) -> None:
        try:
            super().handle()
        except ConnectionError:  # HAProxy ends its health checks with a reset
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


class PodServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, pod: str, port: int) -> None:
        super().__init__(("127.0.0.1", port), PodHandler)
        self.pod = pod
        self.requests: list[str] = []
        self.health_delay = 0.0  # seconds: a busy pod answers its checks late


@dataclass
class Pod:
    name: str
    port: int
    server: PodServer | None = None
    thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = PodServer(self.name, self.port)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Close the listening socket: connections are refused, as by a dead pod."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(timeout=5)
            self.server = None

    @property
    def requests(self) -> list[str]:
        return self.server.requests if self.server else []


@dataclass
class Router:
    port: int
    process: subprocess.Popen
    directory: Path
    config_path: Path
    map_path: Path
    limits_path: Path
    socket_path: Path
    log_path: Path
    pods: dict[str, Pod] = field(default_factory=dict)

    @property
    def admin(self) -> RouterSocket:
        return RouterSocket(self.socket_path, self.map_path)

    def connection(self, source: str | None = None) -> http.client.HTTPConnection:
        """A connection from 127.0.0.1 (a trusted proxy) or from ``source``."""
        return http.client.HTTPConnection(
            "127.0.0.1",
            self.port,
            timeout=10,
            source_address=(source, 0) if source else None,
        )

    def get(
        self,
        host: str,
        connection: http.client.HTTPConnection | None = None,
        path: str = "/page",
        headers: dict[str, str] | None = None,
    ) -> tuple[http.client.HTTPResponse, str]:
        connection = connection or self.connection()
        connection.request("GET", path, headers={"Host": host, **(headers or {})})
        response = connection.getresponse()
        return response, response.read().decode()

    def config(self, pods: dict[str, Pod]) -> str:
        return router.render_config(
            bind=f"127.0.0.1:{self.port}",
            pods={name: pod.address for name, pod in pods.items()},
            map_path=self.map_path,
            socket_path=self.socket_path,
            pages_dir=self.directory / "pages",
            limits_path=self.limits_path,
            trusted_proxies=TRUSTED_PROXIES,
        )

    def worker_pid(self) -> int:
        answer = self.admin.command("show info")
        return int(answer.split("Pid:", 1)[1].split()[0])


def wait_until(condition: Callable[[], bool], *, seconds: float) -> float:
    """Seconds until ``condition`` held; fails the test after ``seconds``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > seconds:
            pytest.fail(f"not within {seconds} s")
        time.sleep(0.02)
    return time.monotonic() - start


@pytest.fixture(scope="module")
def haproxy() -> str:
    try:
        return router.ensure_haproxy()
    except RouterUnavailable as exc:
        tool_unavailable(str(exc))


@pytest.fixture(scope="module")
def edge(haproxy: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    directory = tmp_path_factory.mktemp("router")
    pods = {name: Pod(name, free_port()) for name in ("pod1", "pod2")}
    for pod in pods.values():
        pod.start()
    edge = Router(
        port=free_port(),
        process=None,
        directory=directory,
        config_path=directory / "haproxy.cfg",
        map_path=directory / "hosts.map",
        limits_path=directory / "edge-limits.map",
        socket_path=directory / "admin.sock",
        log_path=directory / "haproxy.log",
        pods=pods,
    )
    router.write_pages(directory / "pages")
    router.write_map(edge.map_path, HOSTS)
    router.write_map_entries(edge.limits_path, {})
    edge.config_path.write_text(edge.config(pods))
    try:
        edge.process = router.start_haproxy(edge.config_path, log_path=edge.log_path)
        yield edge
    finally:
        if edge.process is not None:
            edge.process.terminate()
            try:
                edge.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                edge.process.kill()
                edge.process.wait(timeout=5)
        for pod in pods.values():
            pod.stop()


# --- the configuration ------------------------------------------------------------


def test_the_config_validates(edge):
    result = subprocess.run(
        [router.ensure_haproxy(), "-c", "-f", str(edge.config_path)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "Configuration file is valid" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_an_invalid_config_is_refused_with_haproxys_message(haproxy, tmp_path):
    config = tmp_path / "haproxy.cfg"
    config.write_text("defaults\n    mode http\n    timeout client 1 s x\n")

    with pytest.raises(RouterUnavailable, match="timeout client"):
        router.start_haproxy(config, log_path=tmp_path / "haproxy.log")


def test_names_that_would_break_the_config_or_a_command_are_refused(tmp_path):
    with pytest.raises(InvalidDomain):
        router.write_map(tmp_path / "hosts.map", {"a.example.test set map": "pod1"})
    with pytest.raises(RouterCommandFailed):
        router.write_map(tmp_path / "hosts.map", {"a.example.test": "pod1\n"})
    with pytest.raises(RouterCommandFailed):
        router.backend_name("unknown")  # the unknown-host backend's name
    paths = {
        "map_path": tmp_path / "hosts.map",
        "socket_path": tmp_path / "admin.sock",
        "pages_dir": tmp_path,
    }
    with pytest.raises(RouterUnavailable):
        router.render_config(
            bind="127.0.0.1:8080",
            pods={},
            **paths | {"map_path": tmp_path / "my hosts.map"},
        )
    # the trusted proxies are written into the config as well
    with pytest.raises(RouterUnavailable, match="CMS_TRUSTED_PROXIES"):
        router.render_config(
            bind="127.0.0.1:8080",
            pods={},
            **paths,
            limits_path=tmp_path / "edge-limits.map",
            trusted_proxies=["127.0.0.1/32 if TRUE"],
        )
    assert not (tmp_path / "hosts.map").exists()


def test_the_health_check_host_gets_the_apps_liveness_answer():
    """The app, not the stand-in: a check with another Host would mark pods down."""
    response = Client(HTTP_HOST=router.HEALTH_CHECK_HOST).get(router.HEALTH_CHECK_PATH)

    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


def test_without_haproxy_or_root_the_message_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(debian, "find_tool", lambda name: None)
    monkeypatch.setattr(debian.os, "geteuid", lambda: 1000)

    with pytest.raises(RouterUnavailable, match="apt-get install haproxy"):
        router.ensure_haproxy()


# --- routing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "pod"),
    [
        ("a.example.test", "pod1"),
        ("b.example.test", "pod2"),
        ("A.Example.TEST:8080", "pod1"),
        ("b.example.test:80", "pod2"),
    ],
)
def test_a_request_reaches_the_pod_of_its_host(edge, host, pod):
    response, body = edge.get(host)

    assert response.status == 200
    # the pod sees the Host as sent and the client's address in X-Forwarded-For
    assert body == f"{pod} host={host} xff=127.0.0.1"


@pytest.mark.parametrize("host", ["nobody.example.test", "a.example.test.evil.test"])
def test_an_unknown_host_gets_the_404_page_from_haproxy(edge, host):
    before = {name: len(pod.requests) for name, pod in edge.pods.items()}

    response, body = edge.get(host)

    assert response.status == 404
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert "Site not found" in body
    assert {name: len(pod.requests) for name, pod in edge.pods.items()} == before


def test_a_request_without_host_gets_the_404_page(edge):
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as client:
        client.sendall(b"GET /page HTTP/1.0\r\n\r\n")
        answer = b"".join(iter(lambda: client.recv(65536), b"")).decode()

    assert answer.startswith("HTTP/1.0 404") or answer.startswith("HTTP/1.1 404")
    assert "Site not found" in answer


# --- changing the map at runtime --------------------------------------------------


def test_a_host_moves_between_pods_at_runtime_on_an_open_connection(edge):
    host = "moving.example.test"
    admin = edge.admin
    pid, worker = edge.process.pid, edge.worker_pid()
    admin.set_host(host, "pod1")
    client = edge.connection()
    response, body = edge.get(host, client)
    assert (response.status, body.split()[0]) == (200, "pod1")
    open_socket = client.sock

    admin.set_host(host, "pod2")
    admin.set_host(host, "pod2")  # idempotent: no duplicate entry
    response, body = edge.get(host, client)

    assert (response.status, body.split()[0]) == (200, "pod2")
    assert client.sock is open_socket  # the same keep-alive connection
    assert (edge.process.poll(), edge.process.pid, edge.worker_pid()) == (
        None,
        pid,
        worker,
    )
    assert admin.hosts() == {**HOSTS, host: "pod2"}
    assert admin.command(f"show map {edge.map_path}").count(host) == 1
    assert f"{host} pod_pod2\n" in edge.map_path.read_text()

    admin.remove_host(host)
    admin.remove_host(host)  # absent is fine
    response, body = edge.get(host, client)

    assert response.status == 404
    assert client.sock is open_socket
    assert admin.hosts() == HOSTS
    assert host not in edge.map_path.read_text()
    client.close()


def test_replacing_the_whole_map_at_once(edge):
    admin = edge.admin
    try:
        admin.replace_hosts({"a.example.test": "pod2", "c.example.test": "pod1"})

        assert edge.get("a.example.test")[1].split()[0] == "pod2"
        assert edge.get("c.example.test")[1].split()[0] == "pod1"
        assert edge.get("b.example.test")[0].status == 404
        assert edge.map_path.read_text() == (
            "a.example.test pod_pod2\nc.example.test pod_pod1\n"
        )
    finally:
        admin.replace_hosts(HOSTS)
    assert admin.hosts() == HOSTS


def test_a_restarted_haproxy_starts_from_the_latest_map(edge, tmp_path):
    edge.admin.set_host("kept.example.test", "pod2")
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        edge.config_path.read_text()
        .replace(str(edge.socket_path), str(tmp_path / "admin.sock"))
        .replace(f"127.0.0.1:{edge.port}", f"127.0.0.1:{free_port()}")
    )
    second = router.start_haproxy(config, log_path=tmp_path / "haproxy.log")
    try:
        hosts = RouterSocket(tmp_path / "admin.sock", edge.map_path).hosts()
    finally:
        second.terminate()
        second.wait(timeout=5)
        edge.admin.remove_host("kept.example.test")

    assert hosts == {**HOSTS, "kept.example.test": "pod2"}


# --- a pod that is down -----------------------------------------------------------


def test_a_stopped_pod_gets_the_503_page_fast_and_the_other_pod_keeps_serving(edge):
    pod2, admin = edge.pods["pod2"], edge.admin
    wait_until(lambda: admin.pod_states() == {"pod1": "UP", "pod2": "UP"}, seconds=5)
    pod2.stop()
    try:
        stopped = time.monotonic()
        start = time.monotonic()
        response, body = edge.get("b.example.test")
        first = time.monotonic() - start
        # refused, retried once after `timeout connect`, then answered
        assert response.status == 503
        assert first < 2.0
        assert response.getheader("Retry-After") == "30"
        assert response.getheader("Content-Type") == "text/html; charset=utf-8"
        assert "Back in a moment" in body

        wait_until(lambda: admin.pod_states()["pod2"] == "DOWN", seconds=5)
        marked_down = time.monotonic() - stopped
        start = time.monotonic()
        response, body = edge.get("b.example.test")
        after_down = time.monotonic() - start

        assert marked_down < 3.0
        assert (response.status, response.getheader("Retry-After")) == (503, "30")
        assert after_down < 1.0
        assert edge.get("a.example.test")[0].status == 200
        assert admin.pod_states()["pod1"] == "UP"
    finally:
        pod2.start()

    wait_until(lambda: admin.pod_states()["pod2"] == "UP", seconds=5)
    response, body = edge.get("b.example.test")
    assert (response.status, body.split()[0]) == (200, "pod2")


def test_a_busy_pod_that_answers_its_health_check_late_stays_up(edge):
    """Overload is not death: a pod whose /healthz takes 1.5 s (a full listen queue,
    a worker restarting on a saturated CPU) keeps its traffic; taking it down would
    answer 503 to every tenant on it."""
    pod2, admin = edge.pods["pod2"], edge.admin
    wait_until(lambda: admin.pod_states() == {"pod1": "UP", "pod2": "UP"}, seconds=5)
    pod2.server.health_delay = 1.5
    try:
        states, answers = set(), []
        until = time.monotonic() + 7  # several checks, each answered late
        while time.monotonic() < until:
            states.add(admin.pod_states()["pod2"])
            answers.append(edge.get("b.example.test")[0].status)
            time.sleep(0.2)
    finally:
        pod2.server.health_delay = 0.0
    assert states == {"UP"}
    assert set(answers) == {200}


# --- adding a pod -----------------------------------------------------------------


def test_adding_a_pod_reloads_without_a_new_master_and_keeps_the_map(edge):
    pod3 = Pod("pod3", free_port())
    pod3.start()
    pid, worker = edge.process.pid, edge.worker_pid()
    client = edge.connection()
    assert edge.get("a.example.test", client)[0].status == 200
    try:
        edge.config_path.write_text(edge.config({**edge.pods, "pod3": pod3}))
        router.reload_haproxy(edge.process, edge.config_path, log_path=edge.log_path)
        edge.admin.set_host("c.example.test", "pod3")

        assert (edge.process.pid, edge.process.poll()) == (pid, None)
        assert edge.worker_pid() != worker
        # the idle keep-alive connection gets one more answer from the old worker
        response, body = edge.get("a.example.test", client)
        assert (response.status, body.split()[0]) == (200, "pod1")
        assert edge.get("c.example.test")[1].split()[0] == "pod3"
        assert edge.get("a.example.test")[1].split()[0] == "pod1"
    finally:
        edge.admin.remove_host("c.example.test")
        edge.config_path.write_text(edge.config(edge.pods))
        router.reload_haproxy(edge.process, edge.config_path, log_path=edge.log_path)
        pod3.stop()
    assert set(edge.admin.pod_states()) == {"pod1", "pod2"}


# --- the edge limit -----------------------------------------------------------------


def test_a_tenant_over_its_edge_limit_gets_429_from_haproxy_and_no_pod_sees_it(edge):
    hosts = {"shop.example.test": "pod1", "www.shop.example.test": "pod1"}
    for host, pod in hosts.items():
        edge.admin.set_host(host, pod)
    limits = router.edge_limit_entries(
        dict.fromkeys(hosts, EdgeLimit(pages=4, api=3, client=100, tenant="shop"))
        | {"a.example.test": EdgeLimit(1000, 1000, 1000, "tenant_a")}
    )
    edge.admin.replace_entries(edge.limits_path, limits)
    assert edge.admin.entries(edge.limits_path) == limits
    assert "4:3:100:shop" in edge.limits_path.read_text()  # a restart starts from it
    before = len(edge.pods["pod1"].requests)

    # both host names of the tenant share its 4 pages per window
    answers = [_page(edge, host)[0].status for host in hosts for _ in range(3)]
    assert answers == [200, 200, 200, 200, 429, 429]
    response, body = _page(edge, "shop.example.test")
    assert response.status == 429
    assert response.getheader("Retry-After") == str(router.EDGE_RETRY_AFTER_SECONDS)
    assert response.getheader("Content-Type").startswith("text/html")
    assert "Too many requests" in body
    assert len(edge.pods["pod1"].requests) - before == 4
    # the other tenant on the pod is not held back, nor the tenant's editors
    assert all(_page(edge, "a.example.test")[0].status == 200 for _ in range(6))
    assert edge.get("shop.example.test", path="/admin/pages/")[0].status == 200
    assert edge.get("shop.example.test", path="/admin")[0].status == 200
    # a public page whose path merely starts with "admin" is counted like any other
    assert edge.get("shop.example.test", path="/admin-news/")[0].status == 429


def test_pages_and_the_api_have_budgets_of_their_own_and_the_api_gets_json(edge):
    """A page flood leaves the tenant's API clients their allowance (and the other
    way round), and an API client refused by the edge gets JSON, as from its pod."""
    limit = EdgeLimit(pages=2, api=3, client=100, tenant="apishop")
    _limit(edge, "api.example.test", limit)
    api = "/api/v2/pages/"
    before = len(edge.pods["pod1"].requests)

    pages = [_page(edge, "api.example.test")[0].status for _ in range(4)]
    assert pages == [200, 200, 429, 429]

    def call():
        # apart by more than the API's pace period: this is about its window
        time.sleep(router.EDGE_TENTHS_PACE_MS / 1000 * 1.5)
        return edge.get("api.example.test", path=api)

    assert [call()[0].status for _ in range(3)] == [200, 200, 200]
    assert len(edge.pods["pod1"].requests) - before == 5

    response, body = call()
    assert response.status == 429
    assert response.getheader("Content-Type") == "application/json"
    assert response.getheader("Retry-After") == str(router.EDGE_RETRY_AFTER_SECONDS)
    refusal = json.loads(body)
    assert refusal["error"] == "rate_limited"
    assert refusal["retry_after"] == router.EDGE_RETRY_AFTER_SECONDS
    assert "Try again in" in refusal["message"]
    # the pages' budget is spent, not the API's: the API is refused for its own
    assert edge.get("api.example.test")[0].status == 429
    # the one rule of who gets JSON (tenants.request_path.negotiation): a client
    # asking for JSON and not HTML gets it on a page too, a browser gets the page
    response, body = edge.get(
        "api.example.test", headers={"Accept": "application/json"}
    )
    assert (response.status, json.loads(body)["error"]) == (429, "rate_limited")
    browser = "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8"
    response, body = edge.get("api.example.test", headers={"Accept": browser})
    assert response.status == 429 and "Too many requests" in body
    assert response.getheader("Content-Type").startswith("text/html")


def test_one_client_may_not_spend_the_tenants_pages_at_the_edge(edge):
    """A client over its own share is refused before it counts against the tenant:
    the tenant's other visitors keep the tenant's budget. The client is the peer,
    or the nearest untrusted hop of X-Forwarded-For from a trusted proxy."""
    host = "clients.example.test"
    _limit(edge, host, EdgeLimit(pages=8, api=8, client=3, tenant="clients"))
    before = len(edge.pods["pod1"].requests)

    def statuses(client: str, count: int, **headers: str) -> list[int]:
        forwarded = {"X-Forwarded-For": client, **headers}
        return [_page(edge, host, headers=forwarded)[0].status for _ in range(count)]

    # the flooder gets its share; its refusals spend nothing of the tenant's
    assert statuses("192.0.2.1", 10) == [200] * 3 + [429] * 7
    assert statuses("192.0.2.2", 3) == [200] * 3
    # a hop the client wrote itself proves nothing; a trusted hop is skipped
    assert statuses("10.9.9.9, 192.0.2.1", 1) == [429]
    assert statuses("192.0.2.1, 127.0.0.1", 1) == [429]
    response, body = edge.get(
        host, headers={"X-Forwarded-For": "192.0.2.1", "Accept": "application/json"}
    )
    assert (response.status, json.loads(body)["error"]) == (429, "rate_limited")
    # the tenant's budget: 8 through, whoever asks next is refused for the tenant
    assert statuses("192.0.2.3", 3) == [200, 200, 429]
    assert len(edge.pods["pod1"].requests) - before == 8
    # the API has no budget per client: a client refused for pages still calls it
    api = edge.get(host, path="/api/v2/", headers={"X-Forwarded-For": "192.0.2.1"})
    assert api[0].status == 200

    # from a peer that is not a trusted proxy X-Forwarded-For is not believed: each
    # "client" it names is the same peer
    other = "clients2.example.test"
    _limit(edge, other, EdgeLimit(pages=20, api=8, client=2, tenant="clients2"))
    answers = []
    for n in range(4):
        connection = edge.connection(source="127.0.0.2")
        answers.append(
            edge.get(other, connection, headers={"X-Forwarded-For": f"192.0.2.{n}"})
        )
    assert [response.status for response, _ in answers] == [200, 200, 429, 429]


def _page(edge: Router, host: str, **kwargs) -> tuple[http.client.HTTPResponse, str]:
    """A page request sent after more than the pages' pace period in tenths: for
    the tests of a window or a budget, which that pace must not decide."""
    time.sleep(router.EDGE_TENTHS_PACE_MS / 1000 * 1.5)
    return edge.get(host, **kwargs)


def _browser_load(
    edge: Router, host: str, client: http.client.HTTPConnection
) -> list[int]:
    """A browser loading a page and its images at once: the page and the floor's
    worth of assets less one, back to back. Their statuses."""
    paths = ["/page"] + [
        f"{router.EDGE_ASSET_PATHS[n % 2]}asset{n}.png"
        for n in range(router.EDGE_PACE_FLOOR - 1)
    ]
    return [edge.get(host, client, path=path)[0].status for path in paths]


def _limit(edge: Router, host: str, limit: EdgeLimit) -> None:
    edge.admin.set_host(host, "pod1")
    entries = edge.admin.entries(edge.limits_path) | router.edge_limit_entries(
        {host: limit}
    )
    edge.admin.replace_entries(edge.limits_path, entries)


def test_a_tenant_may_not_spend_its_window_in_one_burst(edge):
    """At most twice the window's average in any one second (40 for 200 per 10 s),
    assets too: the start of a flood of images reaches the pod paced, not as one
    burst."""
    per_second = 200 * router.EDGE_PACE_MULTIPLE // router.EDGE_WINDOW_SECONDS
    assert per_second > router.EDGE_PACE_FLOOR
    for attempt in range(3):  # a second that ends mid-burst lets more through
        host = f"burst{attempt}.example.test"
        _limit(edge, host, EdgeLimit(200, 200, 1000, f"burst{attempt}"))
        before = len(edge.pods["pod1"].requests)
        client = edge.connection()
        started = time.monotonic()
        answers = [
            edge.get(host, client, path=f"/media/images/{n}.jpg")[0]
            for n in range(per_second + 10)
        ]
        if time.monotonic() - started < 0.8:
            break
    statuses = [response.status for response in answers]
    assert statuses == [200] * per_second + [429] * 10
    assert answers[-1].getheader("Retry-After") == "1"
    assert len(edge.pods["pod1"].requests) - before == per_second
    # the next second lets more through: the window (200) is far from spent
    time.sleep(1.2)
    assert edge.get(host)[0].status == 200


def test_pages_may_not_spend_a_seconds_pace_at_once_their_assets_may(edge):
    """A page may have to be rendered: at most twice the window's average in any
    100 ms (8 for 400 per 10 s) reaches the pod; the second's pace let through at
    the start of a flood (80 renders within milliseconds) queued every other
    tenant's visitors behind it. A browser's page and its images load at once."""
    host, client, answers = _dear_burst(edge, "pageburst", "/news/")
    assert answers[-1].getheader("Content-Type").startswith("text/html")
    # the assets of the same tenant keep the second's pace
    assets = [
        edge.get(host, client, path=f"/static/{n}.css")[0].status
        for n in range(router.EDGE_PACE_FLOOR)
    ]
    assert assets == [200] * router.EDGE_PACE_FLOOR
    # a moment later pages go through again
    time.sleep(0.25)
    assert _browser_load(edge, host, client) == [200] * router.EDGE_PACE_FLOOR


def test_the_asset_paths_are_djangos(settings):
    """The edge tells assets from pages by these paths: Django's own."""
    assert set(router.EDGE_ASSET_PATHS) == {settings.STATIC_URL, settings.MEDIA_URL}


def _dear_burst(
    edge: Router, name: str, path: str
) -> tuple[str, http.client.HTTPConnection, list[http.client.HTTPResponse]]:
    """A burst of dear requests (``path``) of a tenant with 400 per 10 s, each
    answered before the next is sent: at most twice the window's average in any 100
    ms (8) passes, the rest is refused with Retry-After 1 and never reaches the pod.
    Returns the host, its connection and the answers."""
    periods = router.EDGE_WINDOW_SECONDS * 1000 // router.EDGE_TENTHS_PACE_MS
    per_period = 400 * router.EDGE_PACE_MULTIPLE // periods
    assert per_period > router.EDGE_TENTHS_PACE_FLOOR
    for attempt in range(5):  # a burst that spans a period's end lets one more in
        host = f"{name}{attempt}.example.test"
        _limit(edge, host, EdgeLimit(400, 400, 1000, f"{name}{attempt}"))
        before = len(edge.pods["pod1"].requests)
        client = edge.connection()
        started = time.monotonic()
        answers = [edge.get(host, client, path=path)[0] for _ in range(per_period + 6)]
        if time.monotonic() - started < 0.04:
            break
    statuses = [response.status for response in answers]
    passed = statuses.count(200)
    assert per_period <= passed <= per_period + 1, statuses
    assert statuses == [200] * passed + [429] * (len(statuses) - passed)
    assert answers[-1].getheader("Retry-After") == "1"
    assert len(edge.pods["pod1"].requests) - before == passed
    return host, client, answers


def test_the_content_api_may_not_spend_a_seconds_allowance_at_once(edge):
    """The API is paced in tenths of a second: at most twice the window's average
    in any 100 ms (8 for 400 per 10 s), so an API flood reaches the pod a few
    requests at a time; a second's pace (80) let through at once queued every other
    tenant behind it. A browser's page and its images still load at once."""
    api = "/api/v2/pages/"
    host, client, answers = _dear_burst(edge, "apiburst", api)
    assert answers[-1].getheader("Content-Type") == "application/json"
    # a moment later more go through: the window (400) is far from spent
    time.sleep(0.25)
    assert edge.get(host, client, path=api)[0].status == 200
    # the same tenant's pages: a browser's page and its images at once
    assert _browser_load(edge, host, client) == [200] * router.EDGE_PACE_FLOOR


def test_the_site_search_is_paced_like_the_api_and_counts_as_pages(edge):
    """A search costs a worker many cached pages: at most twice the pages' average
    in any 100 ms (8 for 400 per 10 s) reach the pod, refused with a page and
    Retry-After 1 beyond that; the tenant's other pages keep a pace of their own.
    Searches spend the pages' window like any page."""
    search = f"{router.EDGE_SEARCH_PATH}?q=news"
    host, client, answers = _dear_burst(edge, "searchburst", search)
    assert answers[-1].getheader("Content-Type").startswith("text/html")
    # the same tenant's other pages (a key of their own in tenths): a browser's
    # page and its images at once
    assert _browser_load(edge, host, client) == [200] * router.EDGE_PACE_FLOOR
    # a moment later searches go through again
    time.sleep(0.25)
    assert edge.get(host, client, path=search)[0].status == 200

    # searches and pages share the pages' window: 2 searches and 2 pages of 4
    host = "searchwindow.example.test"
    _limit(edge, host, EdgeLimit(4, 100, 100, "searchwindow"))
    statuses = []
    for path in (search, search, "/", "/", "/"):
        time.sleep(router.EDGE_TENTHS_PACE_MS / 1000 * 1.5)
        statuses.append(edge.get(host, path=path)[0].status)
    assert statuses == [200, 200, 200, 200, 429]
    assert edge.get(host, path=search)[0].status == 429


def test_a_search_over_the_pages_window_is_told_the_windows_wait(edge):
    """A search over both the pages' window and its own pace gets the window's
    wait (Retry-After 10), not the pace's (1): the pace would send the client back
    in a second to be refused again."""
    search = f"{router.EDGE_SEARCH_PATH}?q=news"
    host = "searchwait.example.test"
    _limit(edge, host, EdgeLimit(4, 100, 100, "searchwait"))
    assert [edge.get(host)[0].status for _ in range(2)] == [200, 200]
    client = edge.connection()
    # two searches at once: the window spent (4 of 4) and the search pace reached
    answers = [edge.get(host, client, path=search)[0] for _ in range(3)]

    assert [answer.status for answer in answers] == [200, 200, 429]
    assert answers[-1].getheader("Retry-After") == str(router.EDGE_RETRY_AFTER_SECONDS)


def test_refused_requests_do_not_count_so_a_flooded_site_keeps_its_allowance(edge):
    """A flood that never stops still gets its limit's worth through each window:
    only what the edge let through counts against the tenant."""
    host = "flooded.example.test"
    _limit(edge, host, EdgeLimit(4, 4, 100, "flooded"))
    client = edge.connection()
    statuses = []
    deadline = time.monotonic() + router.EDGE_WINDOW_SECONDS + 2
    while time.monotonic() < deadline:
        statuses.append(edge.get(host, client)[0].status)
        # apart by more than the pages' pace in tenths: this is about the window
        time.sleep(router.EDGE_TENTHS_PACE_MS / 1000 * 1.5)
    first_window = statuses[:4]
    assert first_window == [200] * 4
    assert statuses[4] == 429
    # counted, the refusals of the flood would keep the tenant out for good
    assert statuses[4:].count(200) >= 1
    assert statuses.count(200) <= 4 * 2 + 1


def test_edge_limits_come_from_each_pods_plans(db, settings):
    from tenants.models import Tenant
    from tenants.pods import edge_limits
    from tenants.pods.directory import Pod

    url = integration.test_database_url()
    pod = Pod("pod1", url, "", "127.0.0.1:1", "active")
    acme = Tenant.objects.select_related("plan").get(schema_name="acme")
    plan = acme.plan
    api = plan.api_reads_per_minute + plan.api_writes_per_minute
    hosts = {"acme.localhost": "pod1", "globex.localhost": "pod2"}

    settings.CMS_EDGE_LIMIT_FACTOR = 2
    limits = edge_limits.edge_limits([pod], hosts, {})
    # twice the plan's minute of each kind, per 10 s; a host routed to another pod
    # not here
    pages = -(-plan.public_reads_per_minute * 2 * 10 // 60)
    client = -(-plan.public_reads_per_client_per_minute * 2 * 10 // 60)
    assert limits == {
        "acme.localhost": EdgeLimit(pages, -(-api * 2 * 10 // 60), client, "acme")
    }
    # a pod that cannot be read keeps what was read before
    down = Pod("pod1", "postgresql://127.0.0.1:1/none", "", "127.0.0.1:1", "active")
    assert edge_limits.edge_limits([down], hosts, limits) == limits
    settings.CMS_EDGE_LIMIT_FACTOR = 0
    assert edge_limits.edge_limits([pod], hosts, {}) == {}


def test_a_bad_edge_limit_row_is_left_out_and_every_other_host_keeps_its_limit(
    caplog,
):
    entries = router.edge_limit_entries(
        {
            "Shop.Example.test": EdgeLimit(10, 6, 3, "shop"),
            "zero.example.test": EdgeLimit(5, 0, 5, "zero"),
            "no-client.example.test": EdgeLimit(5, 5, 0, "noclient"),
            "odd.example.test": EdgeLimit(5, 5, 5, "not a tenant;"),
        }
    )
    assert entries == {"shop.example.test": "10:6:3:shop"}
    assert "no-client.example.test" in caplog.text
    assert "zero.example.test" in caplog.text
    assert "odd.example.test" in caplog.text


def test_the_edges_json_refusal_has_the_pods_shape(rf):
    """An API client handles the edge's 429 and its pod's alike: the same keys with
    the same types (router.py cannot import Django, so it writes them out)."""
    from tenants.tariffs.limits import LimitDecision, limited_response

    decision = LimitDecision("api_reads_per_minute", 60, 60, 0, 12, True)
    pods = json.loads(limited_response(rf.get("/api/v2/pages/"), decision).content)
    edge = json.loads(router.edge_limited_json(router.EDGE_RETRY_AFTER_SECONDS))

    assert {key: type(value) for key, value in edge.items()} == {
        key: type(value) for key, value in pods.items()
    }
    assert edge["error"] == pods["error"] == "rate_limited"
