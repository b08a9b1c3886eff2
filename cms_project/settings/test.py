"""Tests: fast password hashing, no debug toolbar noise, emails kept in memory."""

from cms_project.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
DEBUG = False

# Keys of test runs never meet a development server's keys in a shared Redis.
CACHES["default"]["KEY_PREFIX"] = "test"  # noqa: F405
