"""``manage.py plans``: tariffs listed, shown, created and changed by operators."""

import json
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tenants.models import LIMIT_FIELDS, Plan

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("plans", *args, stdout=out)
    return out.getvalue()


def test_seeded_plans_are_listed_cheapest_first():
    rows = json.loads(run("list", "--json"))

    assert [row["name"] for row in rows] == ["free", "starter", "pro", "enterprise"]
    reads = [row["limits"]["public_reads_per_minute"] for row in rows]
    assert reads == sorted(reads) and len(set(reads)) == 4
    assert re.search(r"^pro\s+\d+\s+\d+\s+\d+\s+Pro", run("list"), re.M)


def test_show_json_has_every_limit_by_its_relied_on_name():
    shown = json.loads(run("show", "starter", "--json"))

    assert shown["name"] == "starter"
    assert set(shown["limits"]) == set(LIMIT_FIELDS)
    assert all(isinstance(value, int) for value in shown["limits"].values())
    text = run("show", "starter")
    for field in LIMIT_FIELDS:
        assert re.search(rf"^{field}:\s+\d+$", text, re.M)


def test_create_from_a_base_plan_and_update():
    output = run(
        "create", "agency", "--from", "pro", "--limit", "concurrent_requests=12",
        "--title", "Agency",
    )  # fmt: skip
    assert output.strip() == "Created plan agency."
    agency = Plan.objects.get(name="agency")
    pro = Plan.objects.get(name="pro")
    assert agency.concurrent_requests == 12
    assert agency.max_pages == pro.max_pages
    assert agency.title == "Agency"

    output = run("update", "agency", "--limit", "public_reads_per_minute=6000")

    assert "public_reads_per_minute=6000" in output
    assert Plan.objects.get(name="agency").public_reads_per_minute == 6000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "gold"), "Unknown plan 'gold'"),
        (("update", "gold", "--limit", "max_pages=1"), "Unknown plan 'gold'"),
        (("update", "pro", "--limit", "max_pagez=1"), "Unknown limit 'max_pagez'"),
        (("update", "pro", "--limit", "max_pages=lots"), "must be a whole number"),
        (("update", "pro", "--limit", "max_pages=-1"), "must be between 0"),
        (("update", "pro", "--limit", "max_pages"), "Give limits as NAME=VALUE"),
        (("update", "pro", "--limit", "concurrent_requests=0"), "at least 1"),
        (("update", "pro"), "Nothing to change"),
        (("create", "pro", "--from", "free"), "already exists"),
        (("create", "Bad Name", "--from", "free"), "Invalid plan name"),
        (("create", "half", "--limit", "max_pages=3"), "Missing limits"),
        (("create", "copy", "--from", "gold"), "Unknown plan 'gold'"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(args, message):
    before = {plan.name: plan.limits() for plan in Plan.objects.all()}

    with pytest.raises(CommandError, match=re.escape(message)):
        run(*args)

    assert {plan.name: plan.limits() for plan in Plan.objects.all()} == before
