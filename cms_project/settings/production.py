"""Production: secrets without defaults, HTTPS everywhere, strict hosts.

Starts only when SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL and REDIS_URL are set, so a
missing secret or host list fails at boot instead of running with a development
default. ``manage.py`` never starts the embedded development servers under these
settings (``cms_project.devstack.ensure_service_urls``).
"""

from cms_project.settings.base import *  # noqa: F403
from cms_project.settings.env import (
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_networks,
    env_str,
)

SECRET_KEY = env_str("SECRET_KEY")
DEBUG = False
# No default: the operator states which host names reach Django (e.g. ".example.com"
# for the tenants under the base domain plus the custom domains' hosts, or "*" to
# leave host validation to the tenant gate alone).
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", None)
CMS_SITE_SCHEME = "https"

# TLS ends at Caddy on this host unless CMS_TRUSTED_PROXIES names other edges; its
# X-Forwarded-Proto is believed, anybody else's dropped (tenants.request_path.
# forwarded_proto), so an HTTPS redirect cannot be fooled or loop.
CMS_TRUSTED_PROXIES = env_networks("CMS_TRUSTED_PROXIES", ["127.0.0.1", "::1"])
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
# HSTS is each tenant's choice (its admin's Domains page, the plan's ``hsts`` switch;
# tenants.domains.policy): a platform-wide header would commit customers' domains.
# SECURE_HSTS_SECONDS still sets it for every host, the operator's own included.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = False
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"
# Preloading HSTS commits a domain to browsers' lists for good; the customers own their
# domains, so the platform does not opt them in (set SECURE_HSTS_PRELOAD to do so).
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS = [*SILENCED_SYSTEM_CHECKS, "security.W021"]  # noqa: F405

# Log events as JSON lines (tenant, request id, ...) unless CMS_LOG_FORMAT=console.
CMS_LOG_FORMAT = env_choice("CMS_LOG_FORMAT", "json", ["console", "json"])
LOGGING["handlers"]["console"]["formatter"] = CMS_LOG_FORMAT  # noqa: F405

# Per-tenant HSTS (above) is invisible to Django's deploy check.
if not SECURE_HSTS_SECONDS:
    SILENCED_SYSTEM_CHECKS = [*SILENCED_SYSTEM_CHECKS, "security.W004"]
