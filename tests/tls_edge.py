"""The TLS edge for end-to-end tests: pebble (Let's Encrypt's test CA) and Caddy with
on-demand TLS from deploy/caddy/Caddyfile, in front of a gunicorn pool, on loopback.

Both come from Debian (``caddy``, ``pebble``): installed here with apt-get when
missing; when that is impossible the fixture fails under CI=true (skips elsewhere).
Pitfalls handled (docs/operations.md has the production side): Debian's pebble ships
no certificate for its own API, so a small CA is made with openssl; pebble makes a
new root on every start (fetched from ``/roots/0`` on its management port) and
forgets its ACME accounts, so Caddy gets fresh storage per pebble; pebble validates
HTTP-01 and TLS-ALPN-01 against Caddy's ports, resolving names through the test DNS
server; ``PEBBLE_VA_NOSLEEP`` and ``PEBBLE_WFE_NONCEREJECT=0`` keep issuance under a
second.
"""

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration import REPO_ROOT, free_port

CADDYFILE = REPO_ROOT / "deploy" / "caddy" / "Caddyfile"
PACKAGES = {"caddy": "/usr/bin/caddy", "pebble": "/usr/bin/pebble"}


def ensure_packages() -> None:
    """Install caddy and pebble from Debian when missing; fail under CI, else skip."""
    missing = [name for name, path in PACKAGES.items() if not Path(path).exists()]
    if not missing:
        return
    reason = None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        reason = f"{', '.join(missing)} missing and no root apt-get to install them"
    else:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        command = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q"]
        result = subprocess.run(
            [*command, *missing], env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
            result = subprocess.run(
                [*command, *missing],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
        if result.returncode != 0:
            reason = (
                f"apt-get install {' '.join(missing)} failed: {result.stderr[-300:]}"
            )
        elif shutil.which("systemctl"):
            # the package enables its own unit; the tests run Caddy themselves
            subprocess.run(
                ["systemctl", "disable", "--now", "caddy"],
                capture_output=True,
                check=False,
            )
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the TLS edge tests need Debian's caddy and pebble: {reason}")
        pytest.skip(f"the TLS edge tests need Debian's caddy and pebble: {reason}")


def make_api_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for 127.0.0.1/localhost signed by it: pebble's
    ACME API listens with it, Caddy trusts the CA (SSL_CERT_FILE)."""
    ca_key, ca_cert = directory / "api-ca.key", directory / "api-ca.pem"
    key, csr, cert = directory / "api.key", directory / "api.csr", directory / "api.pem"
    ext = directory / "api.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(ca_key), "-out", str(ca_cert), "-days", "2",
            "-subj", "/CN=tenant-cms test ACME API CA")  # fmt: skip
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(key), "-out", str(csr),
            "-subj", "/CN=localhost")  # fmt: skip
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert),
            "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
            "-days", "2", "-extfile", str(ext))  # fmt: skip
    return ca_cert, cert, key


def wait_for_port(port: int, process: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited early:\n{log.read_text()[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port}:\n{log.read_text()[-2000:]}")


@dataclass
class TlsEdge:
    http_port: int
    https_port: int
    ask_port: int  # the app's port, where Caddy asks
    pebble_root: Path  # clients trust certificates issued by pebble with this
    caddy_log: Path
    processes: list

    def tls_handshake(self, name: str) -> dict:
        """The certificate Caddy presents for ``name`` (SNI), verified against
        pebble's root; raises ``ssl.SSLError`` when there is none, with the end of
        Caddy's log (why it had none: the ask refused, or the CA failed)."""
        context = ssl.create_default_context(cafile=str(self.pebble_root))
        try:
            with (
                socket.create_connection(
                    ("127.0.0.1", self.https_port), timeout=15
                ) as raw,
                context.wrap_socket(raw, server_hostname=name) as tls,
            ):
                return tls.getpeercert()
        except ssl.SSLError as error:
            log = self.caddy_log.read_text(errors="replace")[-3000:]
            raise ssl.SSLError(f"{error}; Caddy's log ends:\n{log}") from error

    def https_get(self, name: str, path: str = "/") -> tuple[int, dict, str]:
        """GET over TLS to Caddy with SNI and Host ``name`` (resolved to loopback, as
        ``curl --resolve name:port:127.0.0.1`` does), trusting pebble's root only."""
        import http.client

        context = ssl.create_default_context(cafile=str(self.pebble_root))
        raw = socket.create_connection(("127.0.0.1", self.https_port), timeout=15)
        with context.wrap_socket(raw, server_hostname=name) as tls:
            tls.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {name}:{self.https_port}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            response = http.client.HTTPResponse(tls)
            response.begin()
            body = response.read().decode()
            return response.status, dict(response.getheaders()), body

    def http_get(self, name: str, path: str = "/") -> tuple[int, dict]:
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        try:
            connection.request(
                "GET", path, headers={"Host": f"{name}:{self.http_port}"}
            )
            response = connection.getresponse()
            response.read()
            return response.status, dict(response.getheaders())
        finally:
            connection.close()


def start_tls_edge(*, directory: Path, dns_address: str, app_port: int) -> TlsEdge:
    ensure_packages()
    ca_cert, api_cert, api_key = make_api_certificate(directory)
    http_port, https_port = free_port(), free_port()
    acme_port, management_port, admin_port = free_port(), free_port(), free_port()
    config = directory / "pebble.json"
    config.write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"127.0.0.1:{acme_port}",
                    "managementListenAddress": f"127.0.0.1:{management_port}",
                    "certificate": str(api_cert),
                    "privateKey": str(api_key),
                    # where pebble's validation reaches Caddy
                    "httpPort": http_port,
                    "tlsPort": https_port,
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }
            }
        )
    )
    processes = []
    pebble_log = directory / "pebble.log"
    pebble = subprocess.Popen(
        ["pebble", "-config", str(config), "-dnsserver", dns_address],
        env={**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
        stdout=pebble_log.open("w"),
        stderr=subprocess.STDOUT,
    )
    processes.append(pebble)
    wait_for_port(acme_port, pebble, pebble_log, "pebble")
    wait_for_port(management_port, pebble, pebble_log, "pebble's management API")

    # pebble's root of this run: the issuer of every certificate Caddy will get
    root = directory / "pebble-root.pem"
    context = ssl.create_default_context(cafile=str(ca_cert))
    import urllib.request

    with urllib.request.urlopen(
        f"https://127.0.0.1:{management_port}/roots/0", context=context, timeout=10
    ) as response:
        root.write_bytes(response.read())

    storage = directory / "caddy-storage"  # fresh: pebble forgot every account
    caddy_log = directory / "caddy.log"
    caddy = subprocess.Popen(
        ["caddy", "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env={
            **os.environ,
            "HOME": str(directory),
            "XDG_DATA_HOME": str(directory / "data"),
            "XDG_CONFIG_HOME": str(directory / "config"),
            "SSL_CERT_FILE": str(ca_cert),  # trust pebble's API certificate
            "CADDY_ADMIN": f"127.0.0.1:{admin_port}",
            "CADDY_BIND": "127.0.0.1",
            "CADDY_HTTP_PORT": str(http_port),
            "CADDY_HTTPS_PORT": str(https_port),
            "CADDY_HTTPS_PORT_SUFFIX": f":{https_port}",
            "CADDY_STORAGE": str(storage),
            "CADDY_ON_DEMAND_INTERVAL": "10s",
            "CADDY_ON_DEMAND_BURST": "20",
            "CMS_ACME_EMAIL": "ops@example.test",
            "CMS_ACME_CA": f"https://127.0.0.1:{acme_port}/dir",
            "CMS_TLS_ASK_URL": f"http://127.0.0.1:{app_port}/_tls/ask",
            "CMS_UPSTREAMS": f"127.0.0.1:{app_port}",
        },
        stdout=caddy_log.open("w"),
        stderr=subprocess.STDOUT,
    )
    processes.append(caddy)
    wait_for_port(https_port, caddy, caddy_log, "caddy")
    return TlsEdge(
        http_port=http_port,
        https_port=https_port,
        ask_port=app_port,
        pebble_root=root,
        caddy_log=caddy_log,
        processes=processes,
    )


def stop_tls_edge(edge: TlsEdge) -> None:
    from tests.integration import stop_process

    for process in reversed(edge.processes):
        stop_process(process)
