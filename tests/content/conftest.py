"""Fixtures of the tests that call the WSGI application in process
(tests/wsgi_app.py)."""

import pytest
from django.core.signals import request_started

from tests.wsgi_app import transaction_kept


@pytest.fixture
def wsgi_app():
    """Requests through the WSGI application keep the test's transaction."""
    with transaction_kept():
        yield


@pytest.fixture
def django_runs():
    """How many requests reached Django's handler."""
    runs = []

    def count(**kwargs):
        runs.append(1)

    request_started.connect(count)
    yield runs
    request_started.disconnect(count)
