"""Pods: two real pods behind HAProxy, the directory, placement, plans, a dead pod.

Start-up (two PrivateStacks, pools, router) takes about a minute, once per module;
the test killing a pod runs last and brings it back.
"""

import http.client
import json
import os
import signal
import time

import psutil
import psycopg
import pytest
import redis

from tenants.pods import edge_limits
from tenants.pods.directory import Pod
from tenants.pods.placement import PodLoad, choose_pod
from tenants.pods.router import RouterSocket, RouterUnavailable, ensure_haproxy
from tests.ci_plugin import tool_unavailable
from tests.integration import stop_process
from tests.pods import BackgroundThreads, start_two_pods

pytestmark = pytest.mark.slow


def require_haproxy() -> None:
    """Debian's haproxy, installed when missing; skip, or fail under CI, without."""
    try:
        ensure_haproxy()
    except RouterUnavailable as exc:
        tool_unavailable(f"the pods tests need Debian's haproxy: {exc}")


@pytest.fixture(scope="module")
def pods():
    require_haproxy()
    two = start_two_pods()
    yield two
    two.close()


def _router_pid(pods) -> int:
    """The HAProxy process the router runs."""
    (haproxy,) = [
        child
        for child in psutil.Process(pods.router.pid).children()
        if child.name() == "haproxy"
    ]
    return haproxy.pid


def _plan_limit(stack, plan: str) -> int:
    with psycopg.connect(stack.database_url) as conn:
        return conn.execute(
            "SELECT public_reads_per_minute FROM public.tenants_plan WHERE name = %s",
            [plan],
        ).fetchone()[0]


def _pod_domains(stack, slug: str) -> list[str]:
    with psycopg.connect(stack.database_url) as conn:
        return [
            row[0]
            for row in conn.execute(
                "SELECT d.domain FROM public.tenants_domain d JOIN "
                "public.tenants_tenant t ON t.id = d.tenant_id "
                "WHERE t.schema_name = %s ORDER BY d.domain",
                [slug],
            )
        ]


def test_the_router_sends_each_host_to_its_tenants_pod(pods):
    status, _, body = pods.get("acme.localhost")
    assert status == 200 and "Acme" in body
    status, _, body = pods.get("globex.localhost")
    assert status == 200 and "Globex" in body
    # host names are matched without case or port
    assert pods.get(f"ACME.localhost:{pods.router_port}")[0] == 200
    # the router tells the directory which map it routes by (a move waits for it)
    with psycopg.connect(pods.directory_url) as conn:
        synced = conn.execute(
            "SELECT now() - synced_at FROM cms_directory.routers WHERE name LIKE %s",
            [f"% 127.0.0.1:{pods.router_port}"],
        ).fetchall()
    assert len(synced) == 1 and synced[0][0].total_seconds() < 15, synced
    # and each tenant's edge limits from its plan: twice what the plan allows a
    # minute of pages, of API requests and of one client's pages, per 10 s (pro:
    # 3,000 pages, 1,500 + 300 API, 750 per client; starter: 600 pages, 300 + 60
    # API, 150 per client)
    limits = _edge_limits(pods)
    assert limits["acme.localhost"] == "1000:600:250:acme"
    assert limits["globex.localhost"] == "200:120:50:globex"


def test_a_pod_serves_only_its_own_tenants(pods):
    # acme lives on pod1: pod2's pool has no acme at all, nor pod1 a globex
    assert pods.get("acme.localhost", port=pods.web_ports["pod2"])[0] == 404
    assert pods.get("globex.localhost", port=pods.web_ports["pod1"])[0] == 404
    status, _, body = pods.get("nobody.localhost")
    assert status == 404 and "Site not found" in body


def test_pods_list_shows_each_pod_with_its_tenants_and_health(pods):
    result = pods.manage("pod1", "pods", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["POD", "WEB", "STATE", "TENANTS"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"pod1", "pod2"}
    for pod in ("pod1", "pod2"):
        assert rows[pod][1] == f"127.0.0.1:{pods.web_ports[pod]}"
        assert rows[pod][2] == "active"
        assert rows[pod][3] == "1"
        assert rows[pod][5:] == ["up", "up"]


def test_tenants_list_shows_every_pods_tenants_from_any_pod(pods):
    for host in ("pod1", "pod2"):
        result = pods.manage(host, "tenants", "list", "--json")
        assert result.returncode == 0, result.stderr
        rows = {row["slug"]: row["pod"] for row in json.loads(result.stdout)}
        assert rows == {"acme": "pod1", "globex": "pod2"}
    table = pods.manage("pod1", "tenants", "list").stdout
    assert table.split()[:5] == ["SLUG", "PLAN", "STATUS", "POD", "DOMAIN"]
    assert "globex.localhost" in table
    only = pods.manage("pod1", "tenants", "list", "--pod", "pod2", "--json")
    assert [row["slug"] for row in json.loads(only.stdout)] == ["globex"]


def test_slugs_and_domains_are_unique_across_pods(pods):
    # a slug taken on pod1, asked for on pod2
    result = pods.manage(
        "pod1", "tenants", "create", "acme", "--name", "Other Acme",
        "--domain", "other-acme.localhost", "--plan", "starter", "--pod", "pod2",
    )  # fmt: skip
    assert result.returncode != 0
    assert "already exists on pod 'pod1'" in result.stderr
    assert "Traceback" not in result.stderr
    # a host of acme (pod1) added to globex (pod2), from either pod's host
    for operator_pod in ("pod1", "pod2"):
        result = pods.manage(
            operator_pod, "tenants", "add-domain", "globex", "acme.localhost"
        )
        assert result.returncode != 0
        assert "already belongs to a tenant" in result.stderr
        assert "Traceback" not in result.stderr
    # a custom domain acme's admin adds on pod1 (the admin's service) ...
    result = pods.manage(
        "pod1", "shell", "-c",
        "from tenants.domains import ownership\n"
        "from tenants.models import Tenant\n"
        "ownership.domain_add(tenant=Tenant.objects.get(schema_name='acme'),"
        " host='shop.example.test')\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # ... is refused to a new tenant on pod2 and to any write of pod2's (the
    # claim is made on every save of a Domain row, whichever door saves it)
    result = pods.manage(
        "pod1", "tenants", "create", "hooli", "--name", "Hooli",
        "--domain", "shop.example.test", "--plan", "starter", "--pod", "pod2",
    )  # fmt: skip
    assert result.returncode != 0
    assert "'shop.example.test' already belongs to a tenant" in result.stderr
    result = pods.manage(
        "pod2", "shell", "-c",
        "from tenants.errors import TenantError\n"
        "from tenants.models import Domain, Tenant\n"
        "try:\n"
        "    Domain.objects.create(tenant=Tenant.objects.get(schema_name='globex'),"
        " domain='shop.example.test')\n"
        "except TenantError as exc:\n"
        "    print('refused:', exc)\n",
    )  # fmt: skip
    assert "refused: The domain 'shop.example.test' already belongs" in (
        result.stdout
    ), result.stdout + result.stderr
    assert pods.manage("pod2", "tenants", "show", "hooli").returncode != 0
    # nothing was stored, and acme is still served from pod1
    assert _pod_domains(pods.pods["pod2"], "globex") == ["globex.localhost"]
    assert pods.get("acme.localhost")[0] == 200


def test_a_plan_changed_on_one_pod_reaches_the_other_within_a_second(pods):
    pod2 = pods.pods["pod2"]
    before = _plan_limit(pod2, "starter")
    try:
        result = pods.manage(
            "pod1", "plans", "update", "starter", "--limit",
            "public_reads_per_minute=3",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        changed_at = time.monotonic()
        assert _plan_limit(pod2, "starter") == 3
        # globex (pod2, starter) is held to the new limit within a second, at the
        # router's edge too: twice the plan's pages a minute, per 10 s
        time.sleep(max(0.0, 1.0 - (time.monotonic() - changed_at)))
        statuses = [pods.get("globex.localhost")[0] for _ in range(8)]
        assert 429 in statuses, statuses
        assert _edge_limits(pods)["globex.localhost"] == "1:120:50:globex"
    finally:
        result = pods.manage(
            "pod1", "plans", "update", "starter", "--limit",
            f"public_reads_per_minute={before}",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    assert _plan_limit(pod2, "starter") == before


def test_a_tenant_moved_to_another_plan_reaches_the_edge_at_once(pods):
    """`tenants set-plan` wakes the routers: the edge limit follows well within the
    routers' 5-s resync."""
    before = _edge_limits(pods)["globex.localhost"]
    result = pods.manage("pod2", "tenants", "set-plan", "globex", "pro")
    try:
        assert result.returncode == 0, result.stderr
        changed_at = time.monotonic()
        while _edge_limits(pods)["globex.localhost"] == before:
            assert time.monotonic() - changed_at < 1.0, "the edge did not follow"
            time.sleep(0.02)
        allowance = _plan_allowance(pods.pods["pod2"], "pro")
        expected = [edge_limits.per_window(allowed, 2) for allowed in allowance]
        assert _edge_limits(pods)["globex.localhost"] == "{}:{}:{}:globex".format(
            *expected
        )
    finally:
        result = pods.manage("pod2", "tenants", "set-plan", "globex", "starter")
        assert result.returncode == 0, result.stderr


def _plan_allowance(stack, plan: str) -> tuple[int, int, int]:
    """The pages, the API requests and the pages per client ``plan`` allows a
    minute, as the edge limit counts them."""
    with psycopg.connect(stack.database_url) as conn:
        return conn.execute(
            "SELECT public_reads_per_minute, api_reads_per_minute"
            " + api_writes_per_minute, public_reads_per_client_per_minute"
            " FROM public.tenants_plan WHERE name = %s",
            [plan],
        ).fetchone()


def _edge_limits(pods) -> dict[str, str]:
    state = pods.root / "router"
    admin = RouterSocket(state / "admin.sock", state / "hosts.map")
    return admin.entries(state / "edge-limits.map")


def test_placement_prefers_the_least_loaded_pod():
    def load(name, tenants, requests, state="active"):
        return PodLoad(
            pod=Pod(
                name=name,
                database_url="",
                redis_url="",
                web="127.0.0.1:1",
                state=state,
                tenants=tenants,
            ),
            tenants=tenants,
            requests_7d=requests,
        )

    assert choose_pod([load("a", 10, 100), load("b", 5, 100)]) == "b"
    # few tenants but most of the traffic: the other pod
    assert choose_pod([load("a", 2, 9000), load("b", 4, 100)]) == "b"
    # a drained pod or one whose database is out takes nothing
    assert choose_pod([load("a", 0, 0, "draining"), load("b", 9, 9)]) == "b"
    assert choose_pod([load("a", 0, None), load("b", 9, 9)]) == "b"


@pytest.fixture
def initech(pods):
    """The tenant the next test creates, deleted afterwards even when the test
    failed half-way: the tests after it count each pod's tenants."""
    yield "initech"
    if _pod_domains(pods.pods["pod2"], "initech") + _pod_domains(
        pods.pods["pod1"], "initech"
    ):
        pods.manage("pod1", "tenants", "delete", "initech", "--yes")


def test_a_new_tenant_is_placed_forwarded_and_routed_without_a_reload(pods, initech):
    haproxy = _router_pid(pods)
    # pod1 drained: the least loaded active pod is pod2, though the command runs
    # on pod1's host
    assert pods.manage("pod1", "pods", "drain", "pod1").returncode == 0
    try:
        result = pods.manage(
            "pod1", "tenants", "create", "initech", "--name", "Initech",
            "--domain", "initech.localhost", "--plan", "starter",
        )  # fmt: skip
    finally:
        assert pods.manage("pod1", "pods", "activate", "pod1").returncode == 0
    assert result.returncode == 0, result.stderr
    assert "Created tenant initech" in result.stdout
    assert _pod_domains(pods.pods["pod2"], "initech") == ["initech.localhost"]
    assert _pod_domains(pods.pods["pod1"], "initech") == []
    deadline = time.monotonic() + 5
    while pods.get("initech.localhost")[0] != 200:
        assert time.monotonic() < deadline, "the router did not learn initech's host"
        time.sleep(0.1)
    assert _router_pid(pods) == haproxy
    # its plan (starter: 600 pages, 300 + 60 API requests a minute, 150 pages a
    # minute per client) sets its edge limits, twice each per 10 s: a flood past
    # them is refused by HAProxy, never by a pod
    deadline = time.monotonic() + 5
    while _edge_limits(pods).get("initech.localhost") != "200:120:50:initech":
        assert time.monotonic() < deadline, _edge_limits(pods)
        time.sleep(0.1)
    # past the edge's pace (twice the window's average in one second: 40) or its
    # window, HAProxy answers the flood itself; below, the pod's own limits (150
    # reads a minute per client) may refuse first
    statuses, refused = [], None
    deadline = time.monotonic() + 20
    while refused is None:
        assert time.monotonic() < deadline, f"never refused at the edge: {statuses}"
        status, headers, body = pods.get("initech.localhost")
        if status == 429 and "Too many requests" in body:  # HAProxy's page
            refused = headers
        else:
            statuses.append(status)
    assert statuses.count(200) <= 150 and set(statuses) <= {200, 429}
    assert refused["retry-after"] in ("1", "10")
    assert pods.get("globex.localhost")[0] == 200  # a tenant of the same pod
    # commands about initech run on its pod, from any pod's host
    result = pods.manage("pod1", "tenants", "show", "initech")
    assert result.returncode == 0 and "initech.localhost" in result.stdout
    # deleting it frees its names in the directory and the router
    result = pods.manage("pod1", "tenants", "delete", "initech", "--yes")
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 5
    while pods.get("initech.localhost")[0] != 404:
        assert time.monotonic() < deadline, "the router still routes initech"
        time.sleep(0.1)
    assert "initech.localhost" not in _edge_limits(pods)


def _post_article(
    pods, slug: str, token: str, title: str, **extra
) -> tuple[int, str | None]:
    """POST an article through the router: the status and its Retry-After."""
    conn = http.client.HTTPConnection("127.0.0.1", pods.router_port, timeout=30)
    try:
        conn.request(
            "POST",
            "/api/v2/articles/",
            body=json.dumps({"title": title, "text": "Queued.", **extra}),
            headers={
                "Host": f"{slug}.localhost",
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
            },
        )
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("Retry-After")
    finally:
        conn.close()


class _Traffic(BackgroundThreads):
    """A writer posting articles through the router and a reader reading the home
    page, while a move runs; what each got is kept for the assertions."""

    def __init__(self, pods, slug: str, token: str) -> None:
        self.pods, self.slug, self.token = pods, slug, token
        self.acknowledged: list[str] = []
        self.refused: list[tuple[float, int, str | None]] = []
        self.accepted_at: list[float] = []
        self.reads: list[int] = []
        super().__init__(self._write, self._read)

    def _write(self) -> None:
        number = 0
        while not self.stop.is_set():
            number += 1
            title = f"Written during the move {number}"
            status, retry_after = _post_article(self.pods, self.slug, self.token, title)
            if 200 <= status < 300:
                self.acknowledged.append(title)
                self.accepted_at.append(time.monotonic())
            else:
                self.refused.append((time.monotonic(), status, retry_after))
            time.sleep(0.3)

    def _read(self) -> None:
        while not self.stop.is_set():
            self.reads.append(self.pods.get(f"{self.slug}.localhost")[0])
            # the target's other tenant read too: its workers busy, as in production
            self.pods.get("globex.localhost")
            time.sleep(0.02)


def _titles(stack, slug: str) -> set[str]:
    with psycopg.connect(stack.database_url) as conn:
        return {
            row[0]
            for row in conn.execute(
                f'SELECT title FROM "{slug}".wagtailcore_page '
                "WHERE title LIKE 'Written during the move %%'"
            )
        }


@pytest.fixture
def unlimited_reads(pods):
    """The readers below read far faster than a visitor may (every request comes
    from 127.0.0.1): the plans' read limits raised for the test, then put back."""
    fields = ("public_reads_per_minute", "public_reads_per_client_per_minute")
    before = {}
    with psycopg.connect(pods.pods["pod1"].database_url) as conn:
        for plan in ("pro", "starter"):
            before[plan] = conn.execute(
                f"SELECT {', '.join(fields)} FROM public.tenants_plan WHERE name = %s",
                [plan],
            ).fetchone()
    for plan in before:
        limits = [f"--limit={field}=1000000" for field in fields]
        result = pods.manage("pod1", "plans", "update", plan, *limits)
        assert result.returncode == 0, result.stderr
    yield
    for plan, values in before.items():
        limits = [f"--limit={f}={v}" for f, v in zip(fields, values, strict=True)]
        result = pods.manage("pod1", "plans", "update", plan, *limits)
        assert result.returncode == 0, result.stderr


class _LaggingRouter(BackgroundThreads):
    """A second router, as the directory sees it, that syncs its map like a real one
    (a heartbeat every 0.3 s, each recording a map read before the tenant moved)
    but falls ``lag`` seconds behind the switch; and a reader asking the source's
    own pool for the tenant meanwhile, the requests such a router sends there."""

    NAME = "test lagging router"

    def __init__(self, pods, slug: str, source: str, lag: float) -> None:
        self.pods, self.slug, self.source, self.lag = pods, slug, source, lag
        self.switch_seen_at = self.caught_up_at = 0.0
        self.source_answers: list[tuple[float, int]] = []
        super().__init__(self._sync, self._read_source)

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        with psycopg.connect(self.pods.directory_url, autocommit=True) as conn:
            conn.execute(
                "DELETE FROM cms_directory.routers WHERE name = %s", [self.NAME]
            )

    def _sync(self) -> None:
        with psycopg.connect(self.pods.directory_url, autocommit=True) as conn:
            while not self.stop.is_set() and not self.switch_seen_at:
                # one statement: the map it reads is as of its own start, as a
                # router's (directory.host_map_as_of)
                synced = conn.execute(
                    "INSERT INTO cms_directory.routers (name, synced_at) "
                    "SELECT %s, now() WHERE (SELECT pod FROM cms_directory.tenants "
                    "WHERE slug = %s) = %s ON CONFLICT (name) DO UPDATE "
                    "SET synced_at = EXCLUDED.synced_at",
                    [self.NAME, self.slug, self.source],
                ).rowcount
                if not synced:
                    self.switch_seen_at = time.monotonic()
                    break
                time.sleep(0.3)
            if self.stop.wait(self.lag):
                return
            conn.execute(
                "UPDATE cms_directory.routers SET synced_at = now() WHERE name = %s",
                [self.NAME],
            )
            self.caught_up_at = time.monotonic()

    def _read_source(self) -> None:
        port = self.pods.web_ports[self.source]
        while not self.stop.is_set():
            status = self.pods.get(f"{self.slug}.localhost", port=port)[0]
            self.source_answers.append((time.monotonic(), status))
            time.sleep(0.05)


class _LateWriter(BackgroundThreads):
    """A write that passed the freeze check before its process knew of the freeze:
    on the source's database, it starts once the move holds its locks on the
    tenant's tables, and so waits for them. Let through when the move releases
    them, it would commit to the source's copy after the target took over."""

    def __init__(self, stack, slug: str) -> None:
        self.stack, self.slug = stack, slug
        self.started = self.committed = False
        self.error: Exception | None = None
        super().__init__(self._write)

    def _write(self) -> None:
        locked = (
            "SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND l.mode = 'ShareLock' AND l.granted"
        )
        with psycopg.connect(self.stack.database_url, autocommit=True) as probe:
            while not probe.execute(locked, [self.slug]).fetchone():
                if self.stop.wait(0.02):
                    return
        try:
            with psycopg.connect(self.stack.database_url) as conn:
                self.started = True
                conn.execute(f'UPDATE "{self.slug}".wagtailcore_page SET title = title')
                conn.commit()
                self.committed = True
        except psycopg.OperationalError as exc:
            self.error = exc


def _put_back(pods, slug: str, home: str):
    """``slug`` on pod ``home`` again after a move test, even one that failed
    half-way (the tests after it expect it there): a move left under way aborted,
    else moved home. The command run, or None when there was nothing to do."""
    with psycopg.connect(pods.directory_url) as conn:
        row = conn.execute(
            "SELECT pod, state FROM cms_directory.tenants WHERE slug = %s", [slug]
        ).fetchone()
    if row and row[1] == "moving":
        return pods.manage(home, "tenants", "move", slug, "--abort")
    if row and row[0] != home:
        return pods.manage(row[0], "tenants", "move", slug, "--to", home)
    return None


@pytest.fixture
def acme_back_home(pods):
    yield
    _put_back(pods, "acme", "pod1")


def test_a_tenant_moves_live_without_losing_a_write(
    pods, unlimited_reads, acme_back_home
):
    token = pods.pods["pod1"].api_token("acme")
    with (
        _Traffic(pods, "acme", token) as traffic,
        _LaggingRouter(pods, "acme", "pod1", lag=2.0) as lagging,
        _LateWriter(pods.pods["pod1"], "acme") as late,
    ):
        time.sleep(2)
        result = pods.manage("pod1", "tenants", "move", "acme", "--to", "pod2")
        time.sleep(2)
    assert result.returncode == 0, result.stdout + result.stderr
    # the write still waiting for the move's locks was ended, not let through to
    # the source's copy after the switch
    assert late.started, "the move's locks were not seen"
    assert not late.committed and late.error is not None
    assert "Moved acme from pod1 to pod2" in result.stdout
    for step in (
        "copied",
        "writes paused",
        "every acknowledged write",
        "the routers send the tenant to pod2",
        "live on pod2",
    ):
        assert step in result.stdout, result.stdout
    # every write answered 2xx is on the target; none was lost, none failed
    assert len(traffic.acknowledged) > 5
    assert set(traffic.acknowledged) <= _titles(pods.pods["pod2"], "acme")
    assert all(status == 200 for status in traffic.reads), traffic.reads
    # writes were refused (503 with Retry-After) only in a short window
    assert all(s == 503 and after for _, s, after in traffic.refused), traffic.refused
    if traffic.refused:
        first_refused = traffic.refused[0][0]
        first_accepted = min(t for t in traffic.accepted_at if t > first_refused)
        assert first_accepted - first_refused < 10
    # a router behind the switch still found the tenant on the source: the source
    # let it go only once every live router had synced past the switch
    assert lagging.switch_seen_at and lagging.caught_up_at, "the switch was not seen"
    while_behind = [
        status
        for at, status in lagging.source_answers
        if lagging.switch_seen_at <= at < lagging.caught_up_at
    ]
    assert len(while_behind) > 10 and set(while_behind) == {200}, while_behind
    # pod2 serves acme now, through the router and on its own pool; pod1 does not
    status, _, body = pods.get("acme.localhost")
    assert status == 200 and "Acme" in body
    assert pods.get("acme.localhost", port=pods.web_ports["pod2"])[0] == 200
    assert pods.get("acme.localhost", port=pods.web_ports["pod1"])[0] == 404
    listing = pods.manage("pod1", "pods", "list", "--json")
    tenants = {row["name"]: row["tenants"] for row in json.loads(listing.stdout)}
    assert tenants == {"pod1": 0, "pod2": 2}
    # and back, so the other tests find acme on pod1 (a second move of the same
    # tenant, to a pod that keeps its old copy aside)
    result = pods.manage("pod2", "tenants", "move", "acme", "--to", "pod1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(traffic.acknowledged) <= _titles(pods.pods["pod1"], "acme")
    assert pods.get("acme.localhost", port=pods.web_ports["pod1"])[0] == 200


def test_moved_copies_are_kept_for_the_grace_period_then_dropped(pods):
    def moved_schemas() -> list[str]:
        names = []
        for stack in pods.pods.values():
            with psycopg.connect(stack.database_url) as conn:
                names += [
                    row[0]
                    for row in conn.execute(
                        "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'moved_%'"
                    )
                ]
        return names

    # the move test left acme's old copy on each pod, within their grace period
    assert len(moved_schemas()) == 2
    result = pods.manage("pod1", "pods", "cleanup")
    assert result.returncode == 0 and "0 old copies dropped" in result.stdout
    assert len(moved_schemas()) == 2
    # the grace period over
    with psycopg.connect(pods.directory_url, autocommit=True) as conn:
        conn.execute("UPDATE cms_directory.moves SET drop_after = now()")
    result = pods.manage("pod2", "pods", "cleanup")
    assert result.returncode == 0, result.stderr
    assert "2 old copies dropped" in result.stdout
    assert moved_schemas() == []
    assert pods.get("acme.localhost")[0] == 200


def test_a_move_that_fails_half_way_rolls_back(pods):
    before = _pod_domains(pods.pods["pod2"], "globex")
    result = pods.manage(
        "pod1", "tenants", "move", "globex", "--to", "pod1", "--sync-timeout", "0.1"
    )
    assert result.returncode != 0
    assert "failed and was rolled back" in result.stderr
    assert "serves from pod2 as before" in result.stderr
    assert "Traceback" not in result.stderr.split("CommandError")[-1]
    # the source is as it was, writable; the target has nothing of it
    assert _pod_domains(pods.pods["pod2"], "globex") == before
    with psycopg.connect(pods.pods["pod1"].database_url) as conn:
        assert not conn.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = 'globex'"
        ).fetchone()
        assert not conn.execute("SELECT 1 FROM pg_subscription").fetchone()
    with psycopg.connect(pods.pods["pod2"].database_url) as conn:
        assert not conn.execute("SELECT 1 FROM pg_publication").fetchone()
        assert not conn.execute("SELECT 1 FROM pg_replication_slots").fetchone()
        frozen = conn.execute(
            "SELECT writes_frozen_until FROM public.tenants_tenant "
            "WHERE schema_name = 'globex'"
        ).fetchone()[0]
    assert frozen is None
    assert pods.get("globex.localhost")[0] == 200
    # nothing is left under way: a second attempt is not refused as "in progress"
    result = pods.manage("pod1", "tenants", "move", "globex", "--abort")
    assert result.returncode != 0 and "No move of 'globex'" in result.stderr


def test_a_publish_queued_before_a_move_runs_on_the_target(pods):
    """pod2 has no worker: globex's publish waits in pod2's queue. The move holds it
    there, and the target (pod1, with a worker) queues it again and runs it."""
    token = pods.pods["pod2"].api_token("globex", scopes=("read", "write", "publish"))
    title = "Queued before the move"
    assert _post_article(pods, "globex", token, title, publish=True)[0] == 202
    assert pods.get("globex.localhost", "/queued-before-the-move/")[0] == 404
    pods.pods["pod1"].start_celery_worker("pod1-jobs")
    try:
        result = pods.manage("pod2", "tenants", "move", "globex", "--to", "pod1")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "background jobs held" in result.stdout
        assert "job(s) of globex queued again" in result.stdout
        deadline = time.monotonic() + 60
        while pods.get("globex.localhost", "/queued-before-the-move/")[0] != 200:
            assert time.monotonic() < deadline, "the queued publish never ran on pod1"
            time.sleep(0.5)
        # pod2's queue forgot globex: nothing there may run against the old copy
        with redis.Redis.from_url(pods.pods["pod2"].redis_url) as client:
            for kind in ("jobs", "inflight"):
                assert not list(client.scan_iter(match=f"*fairq*:{kind}:globex"))
    finally:
        worker = pods.pods["pod1"].processes.pop()
        stop_process(worker)
    result = pods.manage("pod1", "tenants", "move", "globex", "--to", "pod2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert pods.get("globex.localhost", "/queued-before-the-move/")[0] == 200


def test_a_move_left_behind_by_a_killed_process_is_refused_then_resumed(pods):
    """What a `tenants move` killed right after it recorded itself leaves behind: the
    move's row and the tenant marked moving. Another move is refused with what to
    do; `--resume` undoes what was left and moves the tenant."""
    with psycopg.connect(pods.directory_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO cms_directory.moves (slug, source, target, step) "
            "VALUES ('globex', 'pod2', 'pod1', 'prepared')"
        )
        conn.execute(
            "UPDATE cms_directory.tenants SET state = 'moving' WHERE slug = 'globex'"
        )
    try:
        refused = pods.manage("pod1", "tenants", "move", "globex", "--to", "pod1")
        assert refused.returncode != 0
        assert "already under way" in refused.stderr and "--resume" in refused.stderr
        assert "Traceback" not in refused.stderr.split("CommandError")[-1]
        assert pods.get("globex.localhost")[0] == 200  # still served from pod2

        result = pods.manage("pod2", "tenants", "move", "globex", "--resume")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "rolling back the interrupted move" in result.stdout
        assert "Moved globex from pod2 to pod1" in result.stdout
        assert _pod_domains(pods.pods["pod1"], "globex") == ["globex.localhost"]
        with psycopg.connect(pods.directory_url) as conn:
            assert conn.execute(
                "SELECT pod, state FROM cms_directory.tenants WHERE slug = 'globex'"
            ).fetchone() == ("pod1", "active")
        assert pods.get("globex.localhost")[0] == 200  # the move waited for the router
        # nothing left under way
        done = pods.manage("pod1", "tenants", "move", "globex", "--resume")
        assert done.returncode != 0 and "No move of 'globex'" in done.stderr
    finally:
        back = _put_back(pods, "globex", "pod2")
        assert back is None or back.returncode == 0, back.stdout + back.stderr


def test_a_move_killed_after_its_switch_is_finished_by_resume(pods):
    """`tenants move` killed once the routers send the tenant to the target, before
    the source's clean-up: the tenant is live on the target; `--resume` sets the
    source's copy aside and ends the move, and the tenant takes writes there."""
    move = pods.start_manage("pod2", "tenants", "move", "globex", "--to", "pod1")
    seen = []
    try:
        for line in move.stdout:
            seen.append(line)
            if "the routers send the tenant to pod1" in line:
                move.send_signal(signal.SIGKILL)
                break
        move.wait(30)
        assert move.returncode == -signal.SIGKILL, "".join(seen)
        assert pods.get("globex.localhost")[0] == 200  # live on pod1 already

        result = pods.manage("pod1", "tenants", "move", "globex", "--resume")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "finished the clean-up of the move to pod1" in result.stdout
        assert _pod_domains(pods.pods["pod2"], "globex") == []
        assert _pod_domains(pods.pods["pod1"], "globex") == ["globex.localhost"]
        with psycopg.connect(pods.directory_url) as conn:
            assert conn.execute(
                "SELECT step FROM cms_directory.moves WHERE slug = 'globex' "
                "ORDER BY id DESC LIMIT 1"
            ).fetchone() == ("done",)
        token = pods.pods["pod1"].api_token("globex", scopes=("read", "write"))
        status, _ = _post_article(pods, "globex", token, "Written after the resume")
        assert status in (201, 202), status
        done = pods.manage("pod1", "tenants", "move", "globex", "--resume")
        assert done.returncode != 0 and "No move of 'globex'" in done.stderr
    finally:
        if move.poll() is None:
            move.kill()
            move.wait(10)
        back = _put_back(pods, "globex", "pod2")
        assert back is None or back.returncode == 0, back.stdout + back.stderr


def test_a_dead_pod_fails_only_its_own_tenants_fast(pods):
    pool = pods.pools["pod1"]
    processes = [psutil.Process(pool.pid)]
    processes += processes[0].children(recursive=True)
    for process in processes:
        os.kill(process.pid, signal.SIGKILL)
    pool.wait(10)
    # gone, listening socket and all (a request caught inside the dying pool may get
    # a 502; the guarantee is about requests to a pod that is down)
    psutil.wait_procs(processes, timeout=10)
    try:
        started = time.monotonic()
        answers = []
        while time.monotonic() - started < 4:
            t0 = time.monotonic()
            status, headers, body = pods.get("acme.localhost")
            answers.append((status, time.monotonic() - t0))
            assert pods.get("globex.localhost")[0] == 200
            time.sleep(0.1)
        assert all(status == 503 for status, _ in answers), answers
        assert headers.get("retry-after") == "30"
        assert "Back in a moment" in body
        # after the first second, each answer is immediate
        late = [seconds for status, seconds in answers[len(answers) // 2 :]]
        assert max(late) < 0.5, answers
    finally:
        pods.start_pool("pod1")
    deadline = time.monotonic() + 10
    while pods.get("acme.localhost")[0] != 200:
        assert time.monotonic() < deadline, "pod1 did not come back"
        time.sleep(0.2)
