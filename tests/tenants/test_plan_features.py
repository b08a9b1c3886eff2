"""Plan features: declared once, set per plan from the CLI, growth stopped at the
plan's count, nothing removed by a downgrade."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tenants.models import Plan, Tenant
from tenants.tariffs.features import (
    FEATURES,
    FeatureLimitReached,
    check_feature_count,
    check_feature_enabled,
    plan_feature,
)

pytestmark = pytest.mark.django_db


def plans_command(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("plans", *args, stdout=out)
    return out.getvalue()


def test_seeded_plans_differ_and_unset_features_take_their_default():
    free, pro = Plan.objects.get(name="free"), Plan.objects.get(name="pro")
    assert plan_feature(free, "custom_domains") == 0
    assert plan_feature(pro, "custom_domains") == 3
    free.features.pop("webhook_deliveries_per_hour", None)
    assert (
        plan_feature(free, "webhook_deliveries_per_hour")
        == FEATURES["webhook_deliveries_per_hour"].default
    )


def test_update_sets_counts_and_switches_and_show_prints_them():
    out = plans_command(
        "update", "starter", "--feature", "custom_domains=4", "--feature", "hsts=on"
    )
    assert "custom_domains=4" in out and "hsts=1" in out
    shown = json.loads(plans_command("show", "starter", "--json"))
    assert shown["features"]["custom_domains"] == 4
    assert shown["features"]["hsts"] == 1
    text = plans_command("show", "starter")
    assert "hsts:" in text and "on" in text


def test_create_copies_features_from_base_and_overrides():
    plans_command("create", "agency", "--from", "pro", "--feature", "api_tokens=99")
    agency = Plan.objects.get(name="agency")
    assert plan_feature(agency, "api_tokens") == 99
    assert plan_feature(agency, "custom_domains") == 3


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("nonsense=1", "Unknown feature 'nonsense'"),
        ("custom_domains", "NAME=VALUE"),
        ("custom_domains=-1", "between 0 and"),
        ("custom_domains=lots", "whole number"),
        ("hsts=maybe", "give on or off"),
    ],
)
def test_bad_feature_values_are_refused_and_change_nothing(pair, message):
    before = dict(Plan.objects.get(name="starter").features)
    with pytest.raises(CommandError, match=message):
        plans_command("update", "starter", "--feature", pair)
    assert Plan.objects.get(name="starter").features == before


def test_count_stops_growth_and_a_downgrade_keeps_what_exists():
    tenant = Tenant.objects.get(schema_name="acme")
    tenant.plan.features = {**tenant.plan.features, "api_tokens": 2}
    check_feature_count(tenant, "api_tokens", current=1)
    with pytest.raises(FeatureLimitReached, match="allows 2"):
        check_feature_count(tenant, "api_tokens", current=2)
    # lowered below what the tenant has: still no error for what exists, no growth
    tenant.plan.features["api_tokens"] = 1
    with pytest.raises(FeatureLimitReached):
        check_feature_count(tenant, "api_tokens", current=2)


def test_a_switched_off_feature_is_refused_with_the_plan_named():
    tenant = Tenant.objects.get(schema_name="acme")
    tenant.plan.features = {**tenant.plan.features, "hsts": 0}
    with pytest.raises(FeatureLimitReached, match="does not include"):
        check_feature_enabled(tenant, "hsts")
