"""Caddy's on-demand TLS question: may a certificate be obtained for this name?

Caddy asks ``GET /_tls/ask?domain=NAME`` on the operator's public host before it
requests a certificate from the ACME CA for a name it has never seen. Yes (200) only
for a verified domain of an active tenant, read from the process's cached set of
such names (tenants.registry.resolution.certificate_hosts): no database query per
name asked about, so a flood of random SNI names costs the database nothing (a name
not in the set costs one Redis read: the set is checked against the host map's
generation before the refusal, so a domain verified a moment ago is allowed). Every
refusal - unknown, pending, failed, of a suspended tenant, malformed - is the same
answer, so the endpoint tells nobody more than whether a name already serves a site
(which a visit would show). Suspending or deleting a tenant, or removing a domain,
bumps the host map's generation: the next question is refused.
Asked more than ``CMS_TLS_ASK_RATE`` per client, it answers 429 (a refusal too).
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from django_ratelimit.core import get_usage

from tenants.registry.resolution import certificate_hosts
from tenants.request_path.client_address import client_ip

MAX_NAME_LENGTH = 253


def certificate_allowed(name: str) -> bool:
    """Whether Caddy may get a certificate for ``name`` (as sent: SNI, any case).

    A name missing from this process's set is looked up again after comparing the
    generation with Redis: a visitor who opens the site right after its domain was
    verified (on another worker, a moment ago) gets the certificate, not a handshake
    alert until this worker's next routine check. A refusal costs one Redis read."""
    name = name.strip().lower().rstrip(".")
    if not name or len(name) > MAX_NAME_LENGTH:
        return False
    return name in certificate_hosts() or name in certificate_hosts(fresh=True)


def _client_key(group: str, request: HttpRequest) -> str:
    return client_ip(request)


def _refused(status: int = 403) -> HttpResponse:
    return HttpResponse(
        "no certificate for this name\n", status=status, content_type="text/plain"
    )


@require_GET
def tls_ask(request: HttpRequest) -> HttpResponse:
    try:
        usage = get_usage(
            request,
            group="tls_ask",
            key=_client_key,
            rate=settings.CMS_TLS_ASK_RATE,
            increment=True,
        )
    except Exception:  # noqa: BLE001 - no counter, no certificate: fail closed
        return _refused(503)
    if usage and usage["should_limit"]:
        return _refused(429)
    if certificate_allowed(request.GET.get("domain", "")):
        return HttpResponse("ok\n", content_type="text/plain")
    return _refused()
