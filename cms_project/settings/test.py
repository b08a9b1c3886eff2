"""Tests: fast password hashing, no debug toolbar noise, emails kept in memory."""

from cms_project.settings.base import *  # noqa: F403

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    # verifies users that a development run created in a reused test database
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
DEBUG = False

# Keys of test runs never meet a development server's keys in a shared Redis.
CMS_REDIS_KEY_PREFIX = "test"
for _alias in CACHES.values():  # noqa: F405
    _alias["KEY_PREFIX"] = CMS_REDIS_KEY_PREFIX
# A worker of a running `make up` sharing this Redis must not take the tests' tasks.
CELERY_TASK_DEFAULT_QUEUE = "tests"
CMS_JOBS_QUEUE = env_str("CMS_JOBS_QUEUE", "tests")  # noqa: F405
CMS_JOB_RETRY_BACKOFF_MS = 50
CMS_BACKGROUND_JOB_MODULES = ["tests.content.job_kinds"]
# Workers started by the tests log JSON, so tests can read their events.
CMS_LOG_FORMAT = env_choice("CMS_LOG_FORMAT", "json", ["console", "json"])  # noqa: F405
LOGGING["handlers"]["console"]["formatter"] = CMS_LOG_FORMAT  # noqa: F405
# In-process tests see index updates at once; tests of the Celery path override this.
# The private stacks of the fault tests and bench/faults (CMS_TEST_TASKS=product) run
# the product's backend: their processes then do what production processes do
# (inline index updates from concurrent requests could deadlock on the index).
if env_choice("CMS_TEST_TASKS", "immediate", ["immediate", "product"]) == "immediate":  # noqa: F405
    TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
# Webhook tests start their receivers on 127.0.0.1 over plain http; the SSRF tests
# turn private addresses off again. Retries and disabling come fast.
CMS_WEBHOOKS_ALLOW_HTTP = env_bool("CMS_WEBHOOKS_ALLOW_HTTP", True)  # noqa: F405
CMS_WEBHOOKS_ALLOW_PRIVATE = env_bool("CMS_WEBHOOKS_ALLOW_PRIVATE", True)  # noqa: F405
CMS_WEBHOOKS_RETRY_BASE_MS = env_int("CMS_WEBHOOKS_RETRY_BASE_MS", 200)  # noqa: F405
CMS_WEBHOOKS_DISABLE_AFTER_FAILURES = env_int(  # noqa: F405
    "CMS_WEBHOOKS_DISABLE_AFTER_FAILURES", 4
)
CMS_WEBHOOKS_TIMEOUT_SECONDS = env_int("CMS_WEBHOOKS_TIMEOUT_SECONDS", 5)  # noqa: F405
CMS_WEBHOOKS_QUEUE = env_str("CMS_WEBHOOKS_QUEUE", "tests-webhooks")  # noqa: F405
# Backups written by tests never mix with a development server's.
CMS_BACKUP_DIR = VAR_DIR / "test-backups"  # noqa: F405
CMS_BACKUP_QUEUE = "tests-backups"
STORAGES["backups"] = {  # noqa: F405
    "BACKEND": "django.core.files.storage.FileSystemStorage",
    "OPTIONS": {"location": str(CMS_BACKUP_DIR)},
}
