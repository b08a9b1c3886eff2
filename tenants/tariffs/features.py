"""Plan features: named switches and counts beside a plan's rate limits and quotas.

A plan is data, so what a tenant may have (custom domains, API tokens, webhook
endpoints, backups) is a value on its plan, not a code path per tariff. Every feature
is declared once in ``FEATURES`` with its kind and the value a plan has when it does
not set it; ``Plan.features`` stores only what an operator set. Growth is checked in
one place (``check_feature_count``); a downgrade never deletes what exists, it only
stops further growth, as quotas do.

Issues that add a feature add one line to ``FEATURES``; nothing else changes.
"""

from dataclasses import dataclass

from tenants.errors import TenantError
from tenants.models import Plan, Tenant

MAX_FEATURE_VALUE = 1_000_000


@dataclass(frozen=True)
class Feature:
    """``switch`` features are on (1) or off (0); ``count`` features are how many."""

    kind: str
    default: int
    help: str


FEATURES: dict[str, Feature] = {
    "custom_domains": Feature("count", 1, "domains a tenant's admins may add"),
    "hsts": Feature("switch", 0, "the tenant may turn on HSTS for its domains"),
    "api_tokens": Feature("count", 5, "API tokens a tenant may hold"),
    "webhook_endpoints": Feature("count", 2, "webhook endpoints a tenant may hold"),
    "webhook_deliveries_per_hour": Feature(
        "count", 1000, "webhook deliveries per hour"
    ),
    "webhook_concurrency": Feature("count", 4, "webhook deliveries in flight at once"),
    "backups": Feature("switch", 1, "scheduled backups are taken"),
    "backup_every_hours": Feature("count", 24, "hours between scheduled backups"),
    "backup_retention_days": Feature("count", 7, "days a backup is kept"),
}


class InvalidFeature(TenantError):
    """An unknown feature name or a value its kind does not allow."""


class FeatureLimitReached(TenantError):
    """The plan's count for a feature is used up (or the switch is off)."""


def plan_feature(plan: Plan, name: str) -> int:
    """The plan's value for a feature: what the operator set, else the default."""
    feature = _known(name)
    value = (plan.features or {}).get(name, feature.default)
    return int(value)


def tenant_feature(tenant: Tenant, name: str) -> int:
    return plan_feature(tenant.plan, name)


def plan_features(plan: Plan) -> dict[str, int]:
    return {name: plan_feature(plan, name) for name in FEATURES}


def check_feature_count(tenant: Tenant, name: str, *, current: int) -> None:
    """Raise ``FeatureLimitReached`` when adding one more would exceed the plan.

    ``current`` is what the tenant has now; a tenant already above a lowered count
    keeps what it has and may not add more."""
    allowed = tenant_feature(tenant, name)
    if current + 1 > allowed:
        feature = FEATURES[name]
        if feature.kind == "switch" or allowed == 0:
            raise FeatureLimitReached(
                f"The {tenant.plan.title} plan does not include {feature.help}."
            )
        raise FeatureLimitReached(
            f"The {tenant.plan.title} plan allows {allowed} {feature.help}; "
            f"{current} in use. Remove one or upgrade the plan."
        )


def check_feature_enabled(tenant: Tenant, name: str) -> None:
    if not tenant_feature(tenant, name):
        raise FeatureLimitReached(
            f"The {tenant.plan.title} plan does not include {FEATURES[name].help}."
        )


def parse_features(pairs: list[str]) -> dict[str, int]:
    """Turn ``NAME=VALUE`` strings into a dict; switches take on/off/true/false/1/0."""
    values: dict[str, int] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name, raw = name.strip(), raw.strip().lower()
        if not sep:
            raise InvalidFeature(f"Give features as NAME=VALUE, not {pair!r}.")
        feature = _known(name)
        if feature.kind == "switch":
            if raw in {"1", "true", "on", "yes"}:
                values[name] = 1
            elif raw in {"0", "false", "off", "no"}:
                values[name] = 0
            else:
                raise InvalidFeature(
                    f"{name} is a switch: give on or off, not {raw!r}."
                )
            continue
        try:
            value = int(raw)
        except ValueError:
            raise InvalidFeature(
                f"{name} must be a whole number, not {raw!r}."
            ) from None
        if not 0 <= value <= MAX_FEATURE_VALUE:
            raise InvalidFeature(
                f"{name} must be between 0 and {MAX_FEATURE_VALUE}, not {value}."
            )
        values[name] = value
    return values


def _known(name: str) -> Feature:
    feature = FEATURES.get(name)
    if feature is None:
        raise InvalidFeature(
            f"Unknown feature {name!r}. Known features: {', '.join(FEATURES)}."
        )
    return feature
