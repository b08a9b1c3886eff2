"""Fixtures of the tests that call the WSGI application in process
(tests/content/wsgi_app.py)."""

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections


@pytest.fixture
def wsgi_app():
    """Django's handler closes the database connection after each request (as the
    test client's handler does not): that would end the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def django_runs():
    """How many requests reached Django's handler."""
    runs = []

    def count(**kwargs):
        runs.append(1)

    request_started.connect(count)
    yield runs
    request_started.disconnect(count)
