"""The client's address: one place that knows which hop of a request to believe.

Behind Caddy, HAProxy or a load balancer every request comes from the proxy's address;
the client is named in ``X-Forwarded-For``, which anybody can also send themselves.
So the header is read only when the request came from a proxy the operator trusts
(``CMS_TRUSTED_PROXIES``, a list of CIDRs), right to left, skipping the trusted hops:
the first hop that is not a trusted proxy is the client (what is left of it was
written by the client and proves nothing). Without trusted proxies the header is
ignored and the address is the socket's peer, ``REMOTE_ADDR``.

Used by everything that decides or records per client: login limits
(tenants.tariffs.limits), the ``/metrics`` allow-list, the access log.
"""

import functools
import ipaddress
from collections.abc import Mapping

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs)


def trusted_proxies() -> tuple[Network, ...]:
    """``CMS_TRUSTED_PROXIES`` parsed (once per distinct value)."""
    return _networks(tuple(getattr(settings, "CMS_TRUSTED_PROXIES", ()) or ()))


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.9:51234"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # an IPv4 client seen on a dual-stack socket reads as ::ffff:a.b.c.d
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _is_trusted(address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


def is_trusted_proxy(remote_addr: str) -> bool:
    """Whether a peer address is one of ``CMS_TRUSTED_PROXIES`` (whose forwarded
    headers, X-Forwarded-For and X-Forwarded-Proto, are believed)."""
    networks = trusted_proxies()
    address = _address(remote_addr or "")
    return bool(networks) and address is not None and _is_trusted(address, networks)


def client_ip(request_or_environ: HttpRequest | Mapping[str, str]) -> str:
    """The address of the client that sent the request (a Django request or a WSGI
    environ): ``REMOTE_ADDR`` unless that is a trusted proxy, then the nearest
    untrusted hop of ``X-Forwarded-For``. ``""`` when nothing usable is known."""
    meta = getattr(request_or_environ, "META", request_or_environ)
    remote = meta.get("REMOTE_ADDR", "") or ""
    cidrs = tuple(getattr(settings, "CMS_TRUSTED_PROXIES", ()) or ())
    if not cidrs:
        return remote
    return _client_behind(remote, meta.get("HTTP_X_FORWARDED_FOR", ""), cidrs)


# Every request asks (rate limits per client, the access log), from few distinct
# peers and headers: parsing addresses once per pair is enough.
@functools.lru_cache(maxsize=4096)
def _client_behind(remote: str, forwarded: str, cidrs: tuple[str, ...]) -> str:
    networks = _networks(cidrs)
    peer = _address(remote)
    if peer is None or not _is_trusted(peer, networks):
        return remote
    client = peer
    for hop in reversed(forwarded.split(",")):
        address = _address(hop)
        if address is None:
            # only the client writes garbage (proxies append addresses): the last
            # hop a trusted proxy vouched for is as far as anything is known
            break
        client = address
        if not _is_trusted(address, networks):
            break
    return str(client)
