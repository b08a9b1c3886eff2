"""Writing and reading the audit trail.

Every service that changes a tenant or a plan takes an ``actor`` and records what it
did with ``record_audit`` in the same transaction as the change, so a change and its
entry commit or roll back together. Commands pass ``Actor.command_line()``, views
``Actor.from_request(request)``; code that passes none is recorded as the request's
user when it runs inside a request (``AuditContextMiddleware``), else as the system.
"""

import contextvars
import datetime as dt
import getpass
import ipaddress
import os
import re
import socket
from dataclasses import dataclass

from django.db import connection
from django.http import HttpRequest
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from tenants.audit.models import AuditEntry
from tenants.errors import TenantError
from tenants.request_path.client_address import client_ip

_current_request: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar(
    "audit_request", default=None
)


class InvalidSince(TenantError):
    pass


class UnknownAuditTenant(TenantError):
    pass


@dataclass(frozen=True)
class Actor:
    """Who acts, and through which door (``source``: cli, ops, admin, api, ...)."""

    kind: str
    name: str
    source: str
    ip: str | None = None

    @classmethod
    def command_line(cls) -> "Actor":
        """The operator running ``manage.py``: the login behind sudo when there is
        one, on this host."""
        user = os.environ.get("SUDO_USER") or _login_name()
        return cls(
            kind=AuditEntry.ActorKind.OPERATOR,
            name=f"{user}@{socket.gethostname()}",
            source="cli",
        )

    @classmethod
    def for_user(cls, user, *, source: str, ip: str | None = None) -> "Actor":
        """A tenant's user acting through ``source`` (``api`` with a token, ...)."""
        return cls(
            kind=AuditEntry.ActorKind.USER,
            name=user.get_username(),
            source=source,
            ip=_valid_ip(ip or ""),
        )

    @classmethod
    def from_request(cls, request: HttpRequest, *, source: str = "") -> "Actor":
        """The user of a Django request (session authentication). For a REST
        framework request use ``for_user(request.user, source="api", ...)``: its
        ``user`` authenticates on first access."""
        user = getattr(request, "user", None)
        ip = _valid_ip(client_ip(request))
        if not source:
            source = "api" if request.path.startswith("/api/") else "admin"
            if connection.schema_name == "public":
                source = "ops"
        if user is not None and user.is_authenticated:
            kind = (
                AuditEntry.ActorKind.OPERATOR
                if source == "ops"
                else AuditEntry.ActorKind.USER
            )
            return cls(kind=kind, name=user.get_username(), source=source, ip=ip)
        return cls(
            kind=AuditEntry.ActorKind.ANONYMOUS, name="anonymous", source=source, ip=ip
        )

    @classmethod
    def anonymous_from(cls, request, *, source: str) -> "Actor":
        """Someone not (yet) authenticated, e.g. a failed login. Reads only the
        request's address: asking an API request for its user would authenticate
        it again (and fail again, and recurse)."""
        return cls(
            kind=AuditEntry.ActorKind.ANONYMOUS,
            name="anonymous",
            source=source,
            ip=_valid_ip(client_ip(request)),
        )

    @classmethod
    def system(cls, what: str = "system") -> "Actor":
        return cls(kind=AuditEntry.ActorKind.SYSTEM, name=what, source="system")


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def current_actor() -> Actor:
    """The user of the request being served, or the system outside requests."""
    request = _current_request.get()
    if request is not None:
        return Actor.from_request(request)
    return Actor.system()


def record_audit(
    *,
    action: str,
    actor: Actor | None = None,
    tenant: str | None = None,
    target: str = "",
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEntry:
    """Append one entry. ``tenant`` is the tenant's slug; without it, the active
    schema's tenant (none on the public schema: a fleet-wide action such as a plan
    change). Never store secrets in ``before``/``after`` (password hashes, tokens):
    say that they changed instead."""
    actor = actor or current_actor()
    if tenant is None:
        schema = getattr(connection, "schema_name", "public")
        tenant = "" if schema == "public" else schema
    return AuditEntry.objects.create(
        actor=actor.name[:200],
        actor_kind=actor.kind,
        action=action,
        tenant_schema=tenant,
        target=target[:300],
        source=actor.source,
        ip=actor.ip,
        before=before,
        after=after,
    )


RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, *, now: dt.datetime | None = None) -> dt.datetime:
    """``--since``: an ISO date or date-time (UTC unless it says otherwise), or an
    age such as 30m, 12h, 7d, 2w."""
    text = value.strip()
    match = RELATIVE.match(text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return (now or timezone.now()) - dt.timedelta(**{UNITS[unit]: amount})
    moment = None
    try:
        moment = parse_datetime(text)
        if moment is None and parse_date(text) is not None:
            moment = dt.datetime.combine(parse_date(text), dt.time())
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidSince(
            f"--since takes a date (2026-12-01), a date-time (2026-12-01T10:00) or "
            f"an age (30m, 12h, 7d, 2w), not {value!r}."
        )
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


def audit_entries(
    *,
    tenant: str | None = None,
    since: dt.datetime | None = None,
    action: str | None = None,
    limit: int | None = None,
) -> list[AuditEntry]:
    """Entries oldest first; ``tenant`` narrows to one tenant's slug (a deleted
    tenant's entries stay readable). A slug that never had a tenant nor an entry is
    an error, so a typo does not read as "nothing happened"."""
    if tenant is not None:
        from tenants.models import Tenant

        known = (
            Tenant.objects.filter(schema_name=tenant).exists()
            or AuditEntry.objects.filter(tenant_schema=tenant).exists()
        )
        if not known:
            raise UnknownAuditTenant(f"No tenant and no audit entries for {tenant!r}.")
    entries = AuditEntry.objects.all()
    if tenant is not None:
        entries = entries.filter(tenant_schema=tenant)
    if since is not None:
        entries = entries.filter(at__gte=since)
    if action:
        entries = entries.filter(action__startswith=action)
    if limit:
        ids = list(entries.order_by("-at", "-id").values_list("id", flat=True)[:limit])
        entries = AuditEntry.objects.filter(id__in=ids)
    return list(entries.order_by("at", "id"))


def entry_as_dict(entry: AuditEntry) -> dict:
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "actor_kind": entry.actor_kind,
        "action": entry.action,
        "tenant": entry.tenant_schema or None,
        "target": entry.target,
        "source": entry.source,
        "ip": entry.ip,
        "before": entry.before,
        "after": entry.after,
    }


class AuditContextMiddleware:
    """Lets receivers of Django's signals (user and permission changes) name the
    request's user and address. Costs a context variable per request, no query."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        token = _current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            _current_request.reset(token)
