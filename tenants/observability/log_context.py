"""Who a log line is about: the request id, tenant and user of the work in progress.

Every line a web request or a Celery task writes must carry its tenant and request id,
or one tenant's problem cannot be told apart from another's in a shared pool. The
values live in context variables (set by ``tenants.observability.observation`` for a
request and by ``tenants.jobs.task_context`` for a task) and a logging filter copies
them onto every record, so no call site has to pass them along.
"""

import contextvars
import json
import logging
import os
import re
from datetime import UTC, datetime

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "request_id", default="-"
)
tenant_var: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="-")
user_id_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "user_id", default="-"
)

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_META = "HTTP_X_REQUEST_ID"
# Ids from clients or proxies are echoed into logs and headers: keep them short and
# plain so they cannot forge log fields or inject header lines.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
# The bits ``uuid.UUID(bytes=..., version=4)`` clears and sets: variant, version.
_UUID4_CLEARED = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)


def new_request_id() -> str:
    """A random id, exactly ``uuid.uuid4().hex`` (version 4, RFC 4122 variant), made
    without building a ``UUID`` object: every request without an id of its own makes
    one, and the object's validation was half of its cost."""
    value = int.from_bytes(os.urandom(16), "big")
    value = (value & _UUID4_CLEARED) | _UUID4_SET
    return f"{value:032x}"


def accepted_request_id(candidate: str | None) -> str:
    """The caller's id when it is safe to echo, else a fresh one."""
    if candidate and _SAFE_REQUEST_ID.fullmatch(candidate):
        return candidate
    return new_request_id()


def bind(
    *,
    request_id: str | None = None,
    tenant: str | None = None,
    user_id: str | None = None,
) -> list[tuple[contextvars.ContextVar, contextvars.Token]]:
    """Set the given values; returns tokens for ``unbind``. (Spelled out, not a loop
    over pairs: it runs twice on every request, the cached page's too.)"""
    tokens = []
    if request_id is not None:
        tokens.append((request_id_var, request_id_var.set(request_id)))
    if tenant is not None:
        tokens.append((tenant_var, tenant_var.set(tenant)))
    if user_id is not None:
        tokens.append((user_id_var, user_id_var.set(user_id)))
    return tokens


def unbind(tokens: list[tuple[contextvars.ContextVar, contextvars.Token]]) -> None:
    for var, token in reversed(tokens):
        var.reset(token)


def clear() -> None:
    """Back to "no request" (a pooled worker process between tasks)."""
    request_id_var.set("-")
    tenant_var.set("-")
    user_id_var.set("-")


class RequestContextFilter(logging.Filter):
    """Copies the context onto each record (``%(request_id)s``, ``%(tenant)s``,
    ``%(user_id)s``); values already on the record (an access-log event) win."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "tenant"):
            record.tenant = tenant_var.get()
        if not hasattr(record, "user_id"):
            record.user_id = user_id_var.get()
        return True


class PlannedRefusalFilter(logging.Filter):
    """Drops Django's own WARNING/ERROR line for a 429 or 503: those are the tariff's
    and the gate's planned answers (rate limit, concurrency cap, suspension, readiness),
    already in the access event with the limit that refused. A flood would otherwise
    write a warning per refused request, and every concurrency refusal as an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "status_code", None) not in (429, 503)


# Attributes every LogRecord has; anything else was passed with ``extra=`` and belongs
# in the event.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))
) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request context
    and any ``extra=`` fields, so log pipelines can filter by tenant or request."""

    def format(self, record: logging.LogRecord) -> str:
        event = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id_var.get()),
            "tenant": getattr(record, "tenant", tenant_var.get()),
            "user_id": getattr(record, "user_id", user_id_var.get()),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in event:
                event[key] = value
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)
