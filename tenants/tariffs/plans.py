"""Operators' writes to tariffs. A change reaches every worker within a second (the
host map caches tenants with their plan and is invalidated here)."""

import re

from django.db import transaction

from tenants.audit.trail import Actor, record_audit
from tenants.errors import TenantError
from tenants.models import LIMIT_FIELDS, Plan
from tenants.registry.resolution import invalidate_tenant_map
from tenants.registry.selectors import plan_get

PLAN_NAME = re.compile(r"[a-z][a-z0-9-]{1,39}")
MAX_LIMIT = 2_000_000_000


class InvalidLimit(TenantError):
    pass


class PlanExists(TenantError):
    pass


def parse_limits(pairs: list[str]) -> dict[str, int]:
    """Turn ``NAME=VALUE`` strings into a dict, with a clear error for each bad one."""
    limits: dict[str, int] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep:
            raise InvalidLimit(f"Give limits as NAME=VALUE, not {pair!r}.")
        if name not in LIMIT_FIELDS:
            raise InvalidLimit(
                f"Unknown limit {name!r}. Known limits: {', '.join(LIMIT_FIELDS)}."
            )
        try:
            value = int(raw.strip())
        except ValueError:
            raise InvalidLimit(f"{name} must be a whole number, not {raw!r}.") from None
        if value < 0 or value > MAX_LIMIT:
            raise InvalidLimit(
                f"{name} must be between 0 and {MAX_LIMIT}, not {value}."
            )
        if name == "concurrent_requests" and value == 0:
            raise InvalidLimit("concurrent_requests must be at least 1.")
        limits[name] = value
    return limits


def plan_create(
    *,
    name: str,
    limits: dict[str, int],
    title: str = "",
    base: str | None = None,
    features: dict[str, int] | None = None,
    actor: Actor | None = None,
) -> Plan:
    """Create a tariff; limits not given are copied from ``base`` (all are required
    without one), and so are features (unset ones take their declared default)."""
    if not PLAN_NAME.fullmatch(name):
        raise InvalidLimit(
            f"Invalid plan name {name!r}: use 2-40 lowercase letters, digits or "
            "hyphens, starting with a letter."
        )
    if Plan.objects.filter(name=name).exists():
        raise PlanExists(f"A plan named {name!r} already exists.")
    base_plan = plan_get(base) if base else None
    values = base_plan.limits() if base_plan else {}
    values.update(limits)
    chosen = dict(base_plan.features) if base_plan else {}
    chosen.update(features or {})
    missing = [field for field in LIMIT_FIELDS if field not in values]
    if missing:
        raise InvalidLimit(
            f"Missing limits: {', '.join(missing)} (give them with --limit, or copy "
            "the rest from a plan with --from)."
        )
    with transaction.atomic():
        plan = Plan.objects.create(
            name=name, title=title or name.title(), features=chosen, **values
        )
        record_audit(
            action="plan.created",
            actor=actor,
            tenant="",
            target=f"plan {plan.name}",
            after=_plan_state(plan),
        )
    return plan


def _plan_state(plan: Plan) -> dict:
    return {"title": plan.title, **plan.limits(), "features": dict(plan.features)}


def plan_update(
    *,
    name: str,
    limits: dict[str, int],
    title: str = "",
    features: dict[str, int] | None = None,
    actor: Actor | None = None,
) -> Plan:
    """Change a plan; every tenant on it sees the change within a second. Lowering a
    count never removes what tenants have, it only stops growth."""
    if not limits and not title and not features:
        raise InvalidLimit(
            "Nothing to change: give --limit NAME=VALUE, --feature NAME=VALUE or "
            "--title."
        )
    with transaction.atomic():
        plan = plan_get(name)
        before = _plan_state(plan)
        for field, value in limits.items():
            setattr(plan, field, value)
        if features:
            plan.features = {**plan.features, **features}
        if title:
            plan.title = title
        plan.save()
        record_audit(
            action="plan.updated",
            actor=actor,
            tenant="",
            target=f"plan {plan.name}",
            before=before,
            after=_plan_state(plan),
        )
    invalidate_tenant_map()
    return plan
