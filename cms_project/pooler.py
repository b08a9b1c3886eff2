"""pgbouncer in transaction mode in front of PostgreSQL, as production web hosts run
it (docs/scaling.md, deploy/README.md): server connections - and the catalog caches
PostgreSQL grows in them, one tenant schema at a time - outlive the web workers that
use them. Started here on 127.0.0.1 for the tests and benchmarks that need the
pooler's behaviour, and stopped by whoever started it. The web processes behind it
need ``CMS_DB_TRANSACTION_POOLING=true`` (each request in one transaction that sets its
schema first: tests/isolation/test_pooler.py shows why)."""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cms_project.debian import ensure_tool
from cms_project.devstack import stop_process


@dataclass
class Pooler:
    process: subprocess.Popen
    port: int
    folder: Path
    user: str
    password: str

    def url(self, name: str) -> str:
        """A URL of database ``name`` (one it was started for) through the pooler."""
        password = f":{quote(self.password, safe='')}" if self.password else ""
        return (
            f"postgres://{quote(self.user, safe='')}{password}"
            f"@127.0.0.1:{self.port}/{name}"
        )

    def stop(self) -> None:
        stop_process(self.process)
        shutil.rmtree(self.folder, ignore_errors=True)


def _run_as(host: str) -> str | None:
    """pgbouncer refuses to run as root: it switches to a user that can reach the
    server (the owner of a unix socket's folder, or nobody for TCP)."""
    if os.geteuid() != 0:
        return None
    if host.startswith("/"):
        return pwd.getpwuid(os.stat(host).st_uid).pw_name
    return "nobody"


def start_pgbouncer(
    databases: list[dict], *, port: int, pool_size: int, timeout: float = 15
) -> Pooler:
    """One pgbouncer on 127.0.0.1:``port`` for ``databases`` (Django's settings of
    each - HOST, PORT, NAME, USER, PASSWORD - all on one server, one user; a URL gives
    them through ``dj_database_url.parse``), at most ``pool_size`` server connections
    per database; returns once it accepts connections. Raises
    ``cms_project.debian.ToolMissing`` when pgbouncer cannot be installed, and
    ``RuntimeError`` (with its log) when it does not start."""
    binary = ensure_tool("pgbouncer")
    host = databases[0]["HOST"] or "127.0.0.1"
    server_port = databases[0]["PORT"] or 5432
    user, password = databases[0]["USER"], databases[0].get("PASSWORD") or ""
    folder = Path(tempfile.mkdtemp(prefix="cms-pgbouncer-"))
    folder.chmod(0o777)
    (folder / "users.txt").write_text(f'"{user}" "{password}"\n')
    run_as = _run_as(host)
    entries = "".join(
        f"{db['NAME']} = host={host} port={server_port} dbname={db['NAME']}\n"
        for db in databases
    )
    (folder / "pgbouncer.ini").write_text(
        f"[databases]\n{entries}"
        f"[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        f"pool_mode = transaction\ndefault_pool_size = {pool_size}\n"
        f"max_client_conn = 1000\n"
        # the settings' `options` (statement_timeout) is a startup parameter a
        # transaction pooler cannot keep per client
        f"ignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
        + (f"user = {run_as}\n" if run_as else "")
    )
    for name in ("users.txt", "pgbouncer.ini"):
        (folder / name).chmod(0o644)
    process = subprocess.Popen(
        [binary, str(folder / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pooler = Pooler(process, port, folder, user, password)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return pooler
        except OSError:
            log = folder / "pgbouncer.log"
            if process.poll() is not None or time.monotonic() > deadline:
                reason = log.read_text()[-500:] if log.exists() else "no log"
                pooler.stop()
                raise RuntimeError(f"pgbouncer did not start: {reason}") from None
            time.sleep(0.1)
