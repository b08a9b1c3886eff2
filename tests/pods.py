"""Two real pods on this machine for the pods tests (tests/tenants/test_pods.py).

Each pod is a PrivateStack (its own PostgreSQL and Redis, from the seeded template)
with a gunicorn pool; the demo tenants are split between them (acme on pod1, globex
on pod2) before the pods are registered. The directory is a database of its own on
the test run's PostgreSQL server; ``manage.py pods router`` runs HAProxy in front.
Everything started here is stopped by its PID in ``close``. No pytest here: the pods
benchmark (bench/pods/run.py) starts the same pods; ``start_two_pods`` raises
``RouterUnavailable`` without HAProxy, and the tests skip or fail on it first
(tests/tenants/test_pods.py).
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench.common import database_url_named
from tenants.pods.router import ensure_haproxy
from tests.integration import REPO_ROOT, free_port
from tests.private_stack import PrivateStack

POD_TENANTS = {"pod1": "acme", "pod2": "globex"}
ROUTER_WORKERS = 2


def enable_logical_replication(stack: PrivateStack) -> None:
    """A pod's PostgreSQL with ``wal_level = logical`` (a live move's source)."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET wal_level = logical")
    stack._pg_server.stop()
    stack._attach_postgres()


@dataclass
class TwoPods:
    root: Path
    directory_url: str
    admin_url: str
    directory_name: str
    pods: dict[str, PrivateStack] = field(default_factory=dict)
    web_ports: dict[str, int] = field(default_factory=dict)
    pools: dict[str, subprocess.Popen] = field(default_factory=dict)
    router_port: int = 0
    router: subprocess.Popen | None = None

    def manage(self, pod: str, *args: str, timeout: float = 300):
        """``manage.py *args`` as an operator on ``pod``'s host: the result, not
        raising (tests look at the exit code and the output)."""
        return subprocess.run(
            **self._manage_call(pod, args),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start_manage(self, pod: str, *args: str) -> subprocess.Popen:
        """``manage.py *args`` on ``pod``'s host, running: its output (stderr with it)
        read line by line as it comes, so a test can act mid-command."""
        return subprocess.Popen(
            **self._manage_call(pod, args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def _manage_call(self, pod: str, args: tuple[str, ...]) -> dict:
        return {
            "args": [sys.executable, str(REPO_ROOT / "manage.py"), *args],
            "cwd": REPO_ROOT,
            "env": self.pods[pod].env(),
        }

    def get(
        self, host: str, path: str = "/", *, port: int | None = None
    ) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection(
            "127.0.0.1", port or self.router_port, timeout=10
        )
        try:
            conn.request("GET", path, headers={"Host": host})
            response = conn.getresponse()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read().decode("utf-8", "replace"),
            )
        finally:
            conn.close()

    def start_pool(self, pod: str) -> None:
        self.pools[pod] = self.pods[pod].start_gunicorn(
            self.web_ports[pod],
            workers=ROUTER_WORKERS,
            CMS_TRUSTED_PROXIES="127.0.0.1/32",
        )

    def start_router(self) -> None:
        log = (self.root / "router.log").open("w")
        self.router = subprocess.Popen(
            [
                sys.executable, str(REPO_ROOT / "manage.py"), "pods", "router",
                "--bind", f"127.0.0.1:{self.router_port}",
                "--state-dir", str(self.root / "router"),
            ],
            cwd=REPO_ROOT,
            env=self.pods["pod1"].env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.router.poll() is not None:
                raise RuntimeError(
                    f"the router exited: {(self.root / 'router.log').read_text()}"
                )
            try:
                if all(
                    self.get(f"{slug}.localhost")[0] == 200
                    for slug in POD_TENANTS.values()
                ):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        log = (self.root / "router.log").read_text()
        raise RuntimeError(f"the router did not serve both pods: {log}")

    def close(self) -> None:
        if self.router is not None and self.router.poll() is None:
            self.router.terminate()
            try:
                self.router.wait(15)
            except subprocess.TimeoutExpired:
                self.router.kill()
        for stack in self.pods.values():
            stack.close()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                f'DROP DATABASE IF EXISTS "{self.directory_name}" WITH (FORCE)'
            )
        shutil.rmtree(self.root, ignore_errors=True)


def start_two_pods() -> TwoPods:
    """Raises ``RouterUnavailable`` when HAProxy is missing and cannot be installed."""
    ensure_haproxy()
    root = Path(tempfile.mkdtemp(prefix="cms-pods-"))
    os.chmod(root, 0o755)
    server = os.environ["DATABASE_URL"]
    name = f"cms_directory_{os.getpid()}"
    admin_url = database_url_named(server, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    pods = TwoPods(
        root=root,
        directory_url=database_url_named(server, name),
        admin_url=admin_url,
        directory_name=name,
        router_port=free_port(),
    )
    try:
        for pod, keep in POD_TENANTS.items():
            (root / pod).mkdir()
            stack = PrivateStack(root / pod).start()
            pods.pods[pod] = stack
            for other in set(POD_TENANTS.values()) - {keep}:
                stack.manage("tenants", "delete", other, "--yes")
            enable_logical_replication(stack)
            stack.extra_env = {
                "CMS_DIRECTORY_URL": pods.directory_url,
                "CMS_POD": pod,
            }
            pods.web_ports[pod] = free_port()
        for pod, stack in pods.pods.items():
            stack.manage(
                "pods", "add", pod,
                "--database-url", stack.database_url,
                "--redis-url", stack.redis_url,
                "--web", f"127.0.0.1:{pods.web_ports[pod]}",
                "--media-root", str(stack.var_dir / "media"),
            )  # fmt: skip
            pods.start_pool(pod)
        pods.start_router()
    except BaseException:
        pods.close()
        raise
    return pods


class BackgroundThreads:
    """Traffic beside a step under test: ``targets`` each run in a thread from the
    ``with`` block's start until its end (they loop until ``self.stop`` is set)."""

    join_seconds = 30.0

    def __init__(self, *targets: Callable[[], None]) -> None:
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=t, daemon=True) for t in targets]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(self.join_seconds)
