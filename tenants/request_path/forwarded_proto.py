"""Which requests came over HTTPS: ``X-Forwarded-Proto`` believed only from the TLS
edge.

Caddy terminates TLS and tells the app the scheme in ``X-Forwarded-Proto``; anybody
can send that header too. Django's ``SECURE_PROXY_SSL_HEADER`` trusts it whenever it
is set, so the header is removed from requests whose peer (``REMOTE_ADDR``) is not
one of ``CMS_TRUSTED_PROXIES`` (CIDRs) before Django (or the page-cache edge) looks
at it; the setting itself is on only when trusted proxies are configured. Applied as
a WSGI wrapper (cms_project.wsgi, before tenants.request_path.edge) and as the first
middleware (requests that reach Django another way, such as the test client).
"""

from collections.abc import Callable, Iterable, MutableMapping

from django.http import HttpRequest, HttpResponse

from tenants.request_path.client_address import is_trusted_proxy

HEADER = "HTTP_X_FORWARDED_PROTO"


def drop_untrusted_forwarded_proto(meta: MutableMapping[str, str]) -> None:
    if HEADER in meta and not is_trusted_proxy(meta.get("REMOTE_ADDR", "")):
        del meta[HEADER]


class ForwardedProtoGuard:
    """WSGI wrapper: the environ loses an untrusted ``X-Forwarded-Proto``."""

    def __init__(self, application: Callable) -> None:
        self.application = application

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        drop_untrusted_forwarded_proto(environ)
        return self.application(environ, start_response)


class ForwardedProtoMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        drop_untrusted_forwarded_proto(request.META)
        return self.get_response(request)
