"""Rules for tenant slugs (which become PostgreSQL schema names) and host names."""

import re

from django.conf import settings

from tenants.errors import DomainTaken, InvalidDomain, InvalidSlug, InvalidText

# Matched with fullmatch: "^...$" with match() would let a trailing newline through.
SLUG_PATTERN = re.compile(r"[a-z][a-z0-9_]{1,47}")
# Names PostgreSQL or this product use for their own schemas, plus names that would
# confuse operators reading a URL or a log line.
RESERVED_SLUGS = frozenset(
    {
        "public",
        "information_schema",
        "template",
        "admin",
        "api",
        "www",
        "static",
        "media",
        "default",
        "postgres",
    }
)
HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def validate_slug(slug: str) -> str:
    """Return the slug if it can safely be a schema name, else raise InvalidSlug."""
    if not SLUG_PATTERN.fullmatch(slug):
        raise InvalidSlug(
            f"Invalid slug {slug!r}: use 2-48 lowercase letters, digits or "
            "underscores, starting with a letter."
        )
    if slug in RESERVED_SLUGS or slug.startswith("pg_"):
        raise InvalidSlug(f"The slug {slug!r} is reserved.")
    return slug


def refuse_nul(label: str, value: str | None) -> None:
    """Refuse a value PostgreSQL cannot store, naming it: a NUL reaching the database
    fails there with a message that names neither the field nor the row (and, in a
    lookup, outside the errors a command reports)."""
    if value and "\x00" in value:
        raise InvalidText(
            f"The {label} contains a NUL character, which cannot be stored."
        )


def normalize_domain(host: str) -> str:
    """Lower-case a host name and check it is a plain DNS name (no port, no scheme)."""
    domain = host.strip().lower().rstrip(".")
    labels = domain.split(".")
    if (
        not domain
        or len(domain) > 253
        or not all(HOST_LABEL.fullmatch(label) for label in labels)
    ):
        raise InvalidDomain(
            f"Invalid domain {host!r}: give a host name such as shop.example.com, "
            "without scheme or port."
        )
    return domain


def normalize_tenant_domain(host: str) -> str:
    """Normalize a host name a tenant is to serve: the operator's own public hosts are
    never a tenant's (the gate would serve them from the public schema)."""
    domain = normalize_domain(host)
    if domain in {public.lower() for public in settings.CMS_PUBLIC_HOSTS}:
        raise DomainTaken(f"{domain!r} is the operator's own public host.")
    return domain


def is_platform_domain(domain: str) -> bool:
    """A subdomain of the operator's base domain: given out by the operator and so
    verified by construction; never claimable by a tenant itself."""
    base = settings.CMS_BASE_DOMAIN.lower()
    return domain == base or domain.endswith("." + base)


def normalize_custom_domain(host: str, *, by_operator: bool = False) -> str:
    """Check a domain a tenant wants to bring (or the operator adds for one).

    Refused with a message that says why: wildcards, internationalized names (their
    ASCII ``xn--`` form is suggested), IP addresses, single-label names, the
    operator's public hosts and - unless the operator adds it - anything under the
    platform's base domain."""
    raw = host.strip()
    if "*" in raw:
        raise InvalidDomain(
            f"Wildcard domains such as {raw!r} are not supported: add each host name."
        )
    if not raw.isascii():
        try:
            ascii_form = raw.lower().rstrip(".").encode("idna").decode("ascii")
        except UnicodeError:
            ascii_form = ""
        hint = f" Enter its ASCII form {ascii_form!r} instead." if ascii_form else ""
        raise InvalidDomain(
            f"Internationalized domain names such as {raw!r} are not accepted as "
            f"typed.{hint}"
        )
    domain = normalize_tenant_domain(raw)
    labels = domain.split(".")
    if len(labels) < 2 or labels[-1].isdigit():
        raise InvalidDomain(
            f"Invalid domain {host!r}: give a full host name such as "
            "shop.example.com (not an IP address or a single word)."
        )
    if not by_operator and is_platform_domain(domain):
        raise DomainTaken(
            f"{domain!r} belongs to the platform ({settings.CMS_BASE_DOMAIN}); "
            "add a domain you own."
        )
    return domain
