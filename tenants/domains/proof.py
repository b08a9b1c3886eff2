"""The lookups that prove a tenant controls a domain.

DNS: a TXT record ``_cms-challenge.<domain>`` holding the domain's token, asked of a
real resolver (dnspython): the system's, or ``CMS_DNS_RESOLVER`` (``host`` or
``host:port``, comma-separated for several) so operators and tests choose it.
HTTP: ``http://<domain>/.well-known/cms-challenge/<token>`` answering the token (the
domain's address found through the same resolver; redirects are not followed).

Each returns nothing on success and raises ``DomainVerificationFailed`` with what was
found otherwise; neither writes anything (tenants.domains.ownership does).
"""

import http.client

import dns.exception
import dns.resolver
from django.conf import settings

from tenants.errors import DomainVerificationFailed

CHALLENGE_LABEL = "_cms-challenge"
CHALLENGE_PATH = "/.well-known/cms-challenge/"
LOOKUP_TIMEOUT_SECONDS = 5.0


def challenge_record_name(domain: str) -> str:
    return f"{CHALLENGE_LABEL}.{domain}"


def challenge_url(domain: str, token: str) -> str:
    """Where the domain's current web server must answer the token. Never answered
    by this platform itself: a name merely pointed at the platform proves nothing
    about which tenant owns it."""
    port = getattr(settings, "CMS_DOMAIN_HTTP_CHECK_PORT", 80)
    suffix = "" if port == 80 else f":{port}"
    return f"http://{domain}{suffix}{CHALLENGE_PATH}{token}"


def _resolver() -> dns.resolver.Resolver:
    configured = [
        entry.strip()
        for entry in getattr(settings, "CMS_DNS_RESOLVER", "").split(",")
        if entry.strip()
    ]
    if not configured:
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        nameservers, port = [], 53
        for entry in configured:
            host, sep, raw_port = entry.rpartition(":")
            if not sep:
                host, raw_port = entry, ""
            nameservers.append(host)
            if raw_port:
                port = int(raw_port)
        resolver.nameservers = nameservers
        resolver.port = port
    resolver.lifetime = LOOKUP_TIMEOUT_SECONDS
    # a record just published must be seen now, not after a cached negative answer
    resolver.cache = None
    return resolver


def check_dns_token(domain: str, token: str) -> None:
    name = challenge_record_name(domain)
    try:
        answer = _resolver().resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        raise DomainVerificationFailed(f"No TXT record at {name} yet.") from None
    except dns.exception.DNSException as exc:
        raise DomainVerificationFailed(
            f"DNS lookup of {name} failed: {exc.__class__.__name__}."
        ) from None
    found = [b"".join(record.strings).decode("ascii", "replace") for record in answer]
    if token not in found:
        shown = ", ".join(repr(value[:80]) for value in found[:3])
        raise DomainVerificationFailed(
            f"The TXT record at {name} holds {shown}, not this domain's token."
        )


def _address_of(domain: str) -> str:
    """The domain's IPv4 address through the same resolver as the TXT check."""
    try:
        answer = _resolver().resolve(domain, "A")
    except dns.exception.DNSException as exc:
        raise DomainVerificationFailed(
            f"{domain} has no address: {exc.__class__.__name__}."
        ) from None
    return answer[0].to_text()


def check_http_token(domain: str, token: str) -> None:
    url = challenge_url(domain, token)
    port = getattr(settings, "CMS_DOMAIN_HTTP_CHECK_PORT", 80)
    connection = http.client.HTTPConnection(
        _address_of(domain), port, timeout=LOOKUP_TIMEOUT_SECONDS
    )
    try:
        connection.request("GET", f"{CHALLENGE_PATH}{token}", headers={"Host": domain})
        response = connection.getresponse()
        body = response.read(1024).decode("ascii", "replace").strip()
    except OSError as exc:
        raise DomainVerificationFailed(f"{url} could not be fetched: {exc}.") from None
    finally:
        connection.close()
    if response.status != 200:
        raise DomainVerificationFailed(f"{url} answered HTTP {response.status}.")
    if body != token:
        raise DomainVerificationFailed(f"{url} does not answer this domain's token.")
