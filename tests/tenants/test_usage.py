"""Usage metering: counted per tenant and day in Redis, flushed to UsageDay exactly
once even when a flush dies half-way, and reported by ``tenants usage`` / ``top``."""

import csv
import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command

from tenants.metering import counters, flush, reports
from tenants.models import UsageDay
from tests.conftest import all_slots_taken

pytestmark = pytest.mark.django_db


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _row(schema: str = "acme") -> UsageDay:
    return UsageDay.objects.get(tenant__schema_name=schema, day=_today())


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("tenants", *args, stdout=out)
    return out.getvalue()


def test_requests_are_counted_per_tenant_and_kind(acme_client, globex_client):
    for _ in range(3):
        acme_client.get("/")
    acme_client.get("/api/v2/pages/")
    acme_client.get("/admin/login/")  # the admin is not metered
    globex_client.get("/")

    result = flush.flush_usage()

    assert result.batches == 1
    acme = _row("acme")
    assert (acme.public_reads, acme.api_reads, acme.api_writes) == (3, 1, 0)
    assert (acme.rejected_429, acme.rejected_503) == (0, 0)
    assert _row("globex").public_reads == 1
    assert acme.pages > 0 and acme.users > 0  # snapshot taken at flush


def test_rejections_are_counted(acme_client):
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=1")
    acme_client.get("/")
    acme_client.get("/")
    with all_slots_taken("acme"):
        acme_client.get("/")

    flush.flush_usage()

    acme = _row()
    assert (acme.public_reads, acme.rejected_429, acme.rejected_503) == (1, 1, 1)


def test_flushes_add_up(acme_client):
    acme_client.get("/")
    flush.flush_usage()
    acme_client.get("/")
    acme_client.get("/")
    flush.flush_usage()
    flush.flush_usage()  # nothing new: no change

    assert _row().public_reads == 3


def test_a_flush_that_dies_before_commit_loses_nothing(acme_client, monkeypatch):
    for _ in range(4):
        acme_client.get("/")

    def die(rows):
        raise RuntimeError("worker killed")

    with monkeypatch.context() as patch:
        patch.setattr(flush, "_upsert", die)
        with pytest.raises(RuntimeError):
            flush.flush_usage()
    assert not UsageDay.objects.filter(tenant__schema_name="acme").exists()
    acme_client.get("/")  # counted in a fresh live hash meanwhile

    result = flush.flush_usage()

    assert result.batches == 2  # the leftover batch, then the new one
    assert _row().public_reads == 5


def test_a_flush_that_dies_after_commit_adds_nothing_twice(acme_client, monkeypatch):
    for _ in range(2):
        acme_client.get("/")

    def die(batch):
        raise RuntimeError("worker killed after commit")

    with monkeypatch.context() as patch:
        patch.setattr(flush, "_forget_batch", die)
        with pytest.raises(RuntimeError):
            flush.flush_usage()
    assert _row().public_reads == 2

    flush.flush_usage()  # finds the batch already applied: skips and deletes it
    flush.flush_usage()

    assert _row().public_reads == 2
    client = counters.state_redis()
    assert client.scard(counters.batches_key()) == 0


def test_publish_jobs_are_metered(db):
    counters.record_publish_job(schema="acme")
    counters.record_publish_job(schema="acme")

    flush.flush_usage()

    assert _row().publish_jobs == 2


# --- commands -------------------------------------------------------------------------


def test_usage_command_shows_days_and_totals_including_unflushed(acme_client):
    acme_client.get("/")
    flush.flush_usage()
    acme_client.get("/")  # not flushed yet
    today = _today().isoformat()

    output = _run("usage", "acme", "--from", today, "--to", today)

    lines = output.splitlines()
    assert lines[0] == f"Usage of acme (plan pro) from {today} to {today}"
    assert lines[1].split()[:3] == ["DAY", "PUBLIC_READS", "API_READS"]
    assert lines[2].split()[:2] == [today, "2"]
    assert lines[3].split()[:2] == ["TOTAL", "2"]


def test_usage_command_writes_csv_with_a_row_per_day(acme_client):
    acme_client.get("/api/v2/pages/")
    today = _today()
    start = today - dt.timedelta(days=2)

    output = _run("usage", "acme", "--from", start.isoformat(), "--csv")

    rows = list(csv.DictReader(io.StringIO(output)))
    assert [row["day"] for row in rows] == [
        (start + dt.timedelta(days=n)).isoformat() for n in range(3)
    ]
    assert [row["api_reads"] for row in rows] == ["0", "0", "1"]
    assert set(rows[0]) == {"day", *counters.COUNTERS, *counters.SNAPSHOTS}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-13-01"], "--from must be a date as YYYY-MM-DD"),
        (["--to", "yesterday"], "--to must be a date as YYYY-MM-DD"),
        (["--from", "2026-02-02", "--to", "2026-02-01"], "is after --to"),
    ],
)
def test_usage_command_rejects_bad_dates(args, message):
    with pytest.raises(CommandError, match=message):
        _run("usage", "acme", *args)


def test_usage_command_rejects_an_unknown_tenant():
    with pytest.raises(CommandError, match="nobody"):
        _run("usage", "nobody")


def test_top_lists_the_busiest_tenants(acme_client, globex_client):
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=6")
    statuses = [acme_client.get("/").status_code for _ in range(7)]
    globex_client.get("/")
    assert statuses[-1] == 429

    output = _run("top")

    lines = output.splitlines()
    assert lines[0].split() == [
        "TENANT", "REQ/S", "REQUESTS", "429", "503", "P95_MS", "IN_FLIGHT"
    ]  # fmt: skip
    acme = lines[1].split()
    assert acme[0] == "acme"
    assert acme[2:5] == ["7", "1", "0"]
    assert float(acme[1]) == pytest.approx(7 / 60, abs=0.01)
    assert acme[5].startswith("<=")
    assert lines[2].split()[:3] == ["globex", f"{1 / 60:.2f}", "1"]


def test_top_without_traffic_says_so():
    assert _run("top") == "No tenant traffic in the last minute.\n"


def test_top_rejects_a_bad_limit():
    with pytest.raises(CommandError, match="--limit must be at least 1"):
        _run("top", "--limit", "0")


def test_p95_comes_from_the_latency_histogram():
    histogram = {0: 90, 3: 5, 6: 5}  # 90 under 10 ms, 5 under 100 ms, 5 under 1 s
    assert reports.p95(histogram) == 100
    assert reports.p95({}) is None
