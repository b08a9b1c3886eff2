"""``manage.py plans ...``: the tariffs tenants are on."""

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.audit.trail import Actor
from tenants.errors import TenantError
from tenants.models import LIMIT_FIELDS
from tenants.registry.selectors import plan_as_dict, plan_get, plan_list
from tenants.tariffs import plans as tariffs
from tenants.tariffs.features import FEATURES, parse_features


class Command(BaseCommand):
    help = "List and show tariffs (plans) and their limits."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        listing = actions.add_parser("list", help="List plans.")
        listing.add_argument("--json", action="store_true", help="Print JSON.")
        show = actions.add_parser(
            "show", help="Show one plan with every limit and feature."
        )
        show.add_argument("plan", help="The plan's name.")
        show.add_argument("--json", action="store_true", help="Print JSON.")
        for action, help_text in (
            ("create", "Create a plan."),
            ("update", "Change a plan's limits; tenants on it see them at once."),
        ):
            sub = actions.add_parser(action, help=help_text)
            sub.add_argument("plan", help="The plan's name.")
            sub.add_argument(
                "--limit",
                action="append",
                default=[],
                dest="limits",
                metavar="NAME=VALUE",
                help=f"Repeatable. Names: {', '.join(LIMIT_FIELDS)}.",
            )
            sub.add_argument(
                "--feature",
                action="append",
                default=[],
                dest="features",
                metavar="NAME=VALUE",
                help=(
                    "Repeatable. A count, or on/off for a switch. Names: "
                    f"{', '.join(FEATURES)}."
                ),
            )
            sub.add_argument("--title", default="", help="A human-readable name.")
            if action == "create":
                sub.add_argument(
                    "--from",
                    dest="base",
                    metavar="PLAN",
                    help="Copy the limits and features not given from this plan.",
                )

    def handle(self, *args, **options) -> None:
        try:
            getattr(self, "handle_" + options["action"])(options)
        except TenantError as exc:
            raise CommandError(str(exc)) from exc

    def handle_list(self, options: dict) -> None:
        plans = [plan_as_dict(plan) for plan in plan_list()]
        if options["json"]:
            self.stdout.write(json.dumps(plans, indent=2))
            return
        self.stdout.write(
            f"{'PLAN':<14} {'READS/MIN':>10} {'API/MIN':>8} {'CONC':>5}  TITLE"
        )
        for plan in plans:
            limits = plan["limits"]
            self.stdout.write(
                f"{plan['name']:<14} {limits['public_reads_per_minute']:>10} "
                f"{limits['api_reads_per_minute']:>8} "
                f"{limits['concurrent_requests']:>5}  {plan['title']}"
            )

    def handle_show(self, options: dict) -> None:
        plan = plan_as_dict(plan_get(options["plan"]))
        if options["json"]:
            self.stdout.write(json.dumps(plan, indent=2))
            return
        names = ["name", "title", *LIMIT_FIELDS, *plan["features"]]
        width = max(len(name) for name in names) + 2
        self.stdout.write(f"{'name:':<{width}}{plan['name']}")
        self.stdout.write(f"{'title:':<{width}}{plan['title']}")
        for field in LIMIT_FIELDS:
            self.stdout.write(f"{field + ':':<{width}}{plan['limits'][field]}")
        for name, value in plan["features"].items():
            shown = (
                ("on" if value else "off") if FEATURES[name].kind == "switch" else value
            )
            self.stdout.write(f"{name + ':':<{width}}{shown}")

    def handle_create(self, options: dict) -> None:
        plan = tariffs.plan_create(
            name=options["plan"],
            limits=tariffs.parse_limits(options["limits"]),
            title=options["title"],
            base=options["base"],
            features=parse_features(options["features"]),
            actor=Actor.command_line(),
        )
        self.stdout.write(f"Created plan {plan.name}.")

    def handle_update(self, options: dict) -> None:
        limits = tariffs.parse_limits(options["limits"])
        features = parse_features(options["features"])
        plan = tariffs.plan_update(
            name=options["plan"],
            limits=limits,
            title=options["title"],
            features=features,
            actor=Actor.command_line(),
        )
        changed = ", ".join(
            f"{name}={value}" for name, value in {**limits, **features}.items()
        )
        self.stdout.write(f"Updated plan {plan.name}: {changed or 'title'}.")
