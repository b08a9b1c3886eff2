"""Benchmark (a), the ceiling: Django with no middleware, no database and one view
returning a short text. Nothing a page could do costs less on this machine."""

SECRET_KEY = "bench-plain-" + "k" * 50
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "bench.overhead.plain_urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict = {}
USE_TZ = True
