"""``manage.py plans ...``: the tariffs tenants are on."""

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants import tariffs
from tenants.errors import TenantError
from tenants.models import LIMIT_FIELDS
from tenants.selectors import plan_as_dict, plan_get, plan_list


class Command(BaseCommand):
    help = "List and show tariffs (plans) and their limits."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        listing = actions.add_parser("list", help="List plans.")
        listing.add_argument("--json", action="store_true")
        show = actions.add_parser("show", help="Show one plan with every limit.")
        show.add_argument("plan")
        show.add_argument("--json", action="store_true")
        for action, help_text in (
            ("create", "Create a plan."),
            ("update", "Change a plan's limits; tenants on it see them at once."),
        ):
            sub = actions.add_parser(action, help=help_text)
            sub.add_argument("plan")
            sub.add_argument(
                "--limit",
                action="append",
                default=[],
                dest="limits",
                metavar="NAME=VALUE",
                help=f"Repeatable. Names: {', '.join(LIMIT_FIELDS)}.",
            )
            sub.add_argument("--title", default="")
            if action == "create":
                sub.add_argument("--from", dest="base", help="Copy unset limits.")

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
        self.stdout.write(f"{'name:':<26}{plan['name']}")
        self.stdout.write(f"{'title:':<26}{plan['title']}")
        for field in LIMIT_FIELDS:
            self.stdout.write(f"{field + ':':<26}{plan['limits'][field]}")

    def handle_create(self, options: dict) -> None:
        plan = tariffs.plan_create(
            name=options["plan"],
            limits=tariffs.parse_limits(options["limits"]),
            title=options["title"],
            base=options["base"],
        )
        self.stdout.write(f"Created plan {plan.name}.")

    def handle_update(self, options: dict) -> None:
        limits = tariffs.parse_limits(options["limits"])
        plan = tariffs.plan_update(
            name=options["plan"], limits=limits, title=options["title"]
        )
        changed = ", ".join(f"{name}={value}" for name, value in limits.items())
        self.stdout.write(f"Updated plan {plan.name}: {changed or 'title'}.")
