"""What `make bootstrap` leaves behind for the processes the product starts."""

import importlib
import importlib.util
from pathlib import Path

import pytest

# what every gunicorn and Celery worker imports when it starts
WORKER_IMPORTS = (
    "django.db.models.base",
    "wagtail.admin.panels",
    "wagtail.api.v3.api",
    "django_tenants.models",
    "celery.app.base",
    "storages.backends.s3",
)


@pytest.mark.parametrize("name", WORKER_IMPORTS)
def test_installed_packages_are_compiled_to_bytecode(name):
    """A worker that may not write bytecode (PYTHONDONTWRITEBYTECODE, a read-only
    image) compiles every module it imports at each start unless the install did:
    8 s instead of 2 s per worker here, and a pool whose workers are recycled
    together answers nothing meanwhile."""
    module = importlib.import_module(name)
    compiled = Path(importlib.util.cache_from_source(module.__file__))
    assert compiled.is_file(), f"no bytecode at {compiled}: run make bootstrap"
