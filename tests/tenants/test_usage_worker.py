"""The usage flush as Celery beat runs it: registered, and run by a real worker on
committed data."""

import datetime as dt

import pytest

from tenants.metering import counters, flush
from tenants.models import UsageDay


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@pytest.fixture
def committed(django_db_blocker):
    from django.db import connection

    with django_db_blocker.unblock():
        yield
        connection.set_schema_to_public()


def test_beat_schedules_the_flush_task():
    from django.conf import settings

    from cms_project.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["flush-usage"]
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks


def test_the_flush_task_runs_on_a_real_worker(committed, celery_worker):
    from tenants.models import UsageFlush
    from tenants.tasks import flush_usage_task
    from tests.integration import wait_for

    flush.flush_usage()  # start from an empty live hash
    UsageDay.objects.filter(day=_today()).delete()
    try:
        for _ in range(3):
            counters.record_publish_job(schema="globex")

        flush_usage_task.delay()

        row = wait_for(
            lambda: UsageDay.objects.filter(
                tenant__schema_name="globex", day=_today(), publish_jobs=3
            ).first(),
            timeout=60,
            what=f"the worker's flush (log: {celery_worker})",
        )
        assert row.pages > 0  # snapshot taken in globex's schema by the worker
        assert counters.state_redis().hlen(counters.live_key()) == 0
    finally:
        UsageDay.objects.filter(day=_today()).delete()
        UsageFlush.objects.all().delete()
