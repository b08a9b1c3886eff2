"""The only way a webhook leaves the platform: an HTTP POST that cannot be turned
against the platform or its neighbours (server-side request forgery).

Checked at delivery time, not only when the endpoint is saved, because DNS answers
change: the URL's scheme (https; http only with ``CMS_WEBHOOKS_ALLOW_HTTP``), then
every address the host resolves to (loopback, private, link-local, multicast,
reserved and unspecified addresses, the platform's own public addresses and
``CMS_WEBHOOKS_DENY_NETWORKS`` are refused unless ``CMS_WEBHOOKS_ALLOW_PRIVATE`` or
``CMS_WEBHOOKS_ALLOW_NETWORKS`` allow them). The connection goes to the address that
was checked (TLS still verifies the host name), so a second DNS answer cannot
rebind it. Redirects are not followed unless ``CMS_WEBHOOKS_MAX_REDIRECTS`` > 0, and
each one is checked like the first URL. Responses are read up to
``CMS_WEBHOOKS_RESPONSE_MAX_BYTES`` within ``CMS_WEBHOOKS_TIMEOUT_SECONDS``.
"""

import functools
import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefused(Exception):
    """The URL may not be called; the message says why (shown in the delivery log)."""


@dataclass(frozen=True)
class EgressResult:
    """What came back: a status (``None`` when no answer), or an error."""

    status: int | None
    latency_ms: int
    excerpt: str
    error: str = ""
    refused: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def check_scheme(url: str) -> None:
    """Raise ``DestinationRefused`` for a URL the platform never calls, whatever it
    resolves to (used when an endpoint is saved too)."""
    parts = urlsplit(url)
    allowed = {"https", "http"} if settings.CMS_WEBHOOKS_ALLOW_HTTP else {"https"}
    if parts.scheme not in allowed:
        raise DestinationRefused(
            f"Only {' or '.join(sorted(allowed))} URLs are allowed, not "
            f"{parts.scheme or 'no scheme'}."
        )
    if not parts.hostname:
        raise DestinationRefused("The URL has no host.")
    if parts.username or parts.password:
        raise DestinationRefused("URLs with a user name or password are not allowed.")


def _networks(values: list[str]) -> list[ipaddress._BaseNetwork]:
    return [ipaddress.ip_network(value.strip(), strict=False) for value in values]


@functools.lru_cache(maxsize=1)
def _platform_addresses() -> frozenset[IPAddress]:
    """Public addresses the platform's own host names resolve to (private ones are
    refused by their kind already)."""
    found: set[IPAddress] = set()
    for host in {settings.CMS_BASE_DOMAIN, *settings.CMS_PUBLIC_HOSTS}:
        try:
            for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM):
                found.add(ipaddress.ip_address(info[4][0].split("%")[0]))
        except OSError:
            continue
    return frozenset(address for address in found if address.is_global)


def address_problem(address: IPAddress) -> str | None:
    """Why ``address`` may not be called, or ``None`` when it may."""
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for network in _networks(settings.CMS_WEBHOOKS_DENY_NETWORKS):
        if address in network:
            return f"{address} is in a denied network ({network})"
    if address in _platform_addresses():
        return f"{address} is the platform's own address"
    if settings.CMS_WEBHOOKS_ALLOW_PRIVATE:
        return None
    for network in _networks(settings.CMS_WEBHOOKS_ALLOW_NETWORKS):
        if address in network:
            return None
    for kind in (
        "loopback", "link_local", "private", "multicast", "reserved", "unspecified"
    ):  # fmt: skip
        if getattr(address, f"is_{kind}"):
            return f"{address} is a {kind.replace('_', '-')} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def resolve_destination(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, all of them allowed, else
    ``DestinationRefused`` naming the first that is not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise DestinationRefused(f"{host} does not resolve ({exc}).") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if address not in addresses:
            addresses.append(address)
    for address in addresses:
        problem = address_problem(address)
        if problem:
            shown = "" if host == str(address) else f"{host} resolves to "
            raise DestinationRefused(f"{shown}{problem}.")
    return addresses


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked address, whatever the host name resolves to now."""

    def __init__(self, host, port, *, address: IPAddress, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = str(address)

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, *, address: IPAddress, timeout: float):
        super().__init__(
            host, port, timeout=timeout, context=ssl.create_default_context()
        )
        self._address = str(address)

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, *, body: bytes, headers: dict[str, str]) -> EgressResult:
    """POST ``body`` to ``url`` under the rules above; never raises for what the
    destination does (the result says it), so callers can log every attempt."""
    started = time.monotonic()
    timeout = settings.CMS_WEBHOOKS_TIMEOUT_SECONDS
    redirects_left = settings.CMS_WEBHOOKS_MAX_REDIRECTS

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    while True:
        try:
            check_scheme(url)
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            addresses = resolve_destination(parts.hostname, port)
        except DestinationRefused as exc:
            return EgressResult(None, elapsed_ms(), "", str(exc), refused=True)
        connection_class = (
            _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
        )
        connection = connection_class(
            parts.hostname, port, address=addresses[0], timeout=timeout
        )
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            excerpt = _read_capped(response, started=started, timeout=timeout)
        except (OSError, http.client.HTTPException) as exc:
            return EgressResult(None, elapsed_ms(), "", _describe(exc, timeout))
        finally:
            connection.close()
        location = response.getheader("Location")
        if 300 <= response.status < 400 and location:
            target = urljoin(url, location)
            if redirects_left <= 0:
                return EgressResult(
                    response.status,
                    elapsed_ms(),
                    excerpt,
                    f"Redirect to {target} not followed (redirects are off).",
                )
            redirects_left -= 1
            url = target
            continue
        return EgressResult(response.status, elapsed_ms(), excerpt)


def _read_capped(
    response: http.client.HTTPResponse, *, started: float, timeout: float
) -> str:
    """At most the configured number of bytes, and no longer than the timeout in
    all (a receiver dripping bytes cannot hold a worker)."""
    cap = settings.CMS_WEBHOOKS_RESPONSE_MAX_BYTES
    chunks: list[bytes] = []
    size = 0
    while size < cap:
        if time.monotonic() - started > timeout:
            raise TimeoutError("the response took longer than the timeout")
        chunk = response.read1(min(8192, cap - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[:2000].decode("utf-8", errors="replace")


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"No answer within {timeout} s."
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc}."
    return f"Connection failed: {exc}."
