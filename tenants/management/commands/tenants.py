"""``manage.py tenants ...``: the operator's interface to tenants (names relied on)."""

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants import lifecycle, provisioning
from tenants.errors import TenantError
from tenants.models import Tenant
from tenants.selectors import tenant_as_dict, tenant_get, tenant_list


class Command(BaseCommand):
    help = "Create, list, change and delete tenants."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        create = actions.add_parser("create", help="Provision a new tenant.")
        create.add_argument("slug")
        create.add_argument("--name", required=True)
        create.add_argument(
            "--domain", action="append", required=True, dest="domains",
            help="Host name; repeat for more. The first is primary.",
        )  # fmt: skip
        create.add_argument("--plan", required=True)
        create.add_argument("--admin-email")
        create.add_argument("--admin-password")

        listing = actions.add_parser("list", help="List tenants.")
        listing.add_argument("--json", action="store_true")

        show = actions.add_parser("show", help="Show one tenant.")
        show.add_argument("slug")
        show.add_argument("--json", action="store_true")

        set_plan = actions.add_parser("set-plan", help="Move a tenant to a plan.")
        set_plan.add_argument("slug")
        set_plan.add_argument("plan")

        for name, help_text in (
            ("add-domain", "Add a host name to a tenant."),
            ("remove-domain", "Remove a host name from a tenant."),
        ):
            sub = actions.add_parser(name, help=help_text)
            sub.add_argument("slug")
            sub.add_argument("host")

        for name, help_text in (
            ("suspend", "Serve a 503 page instead of the tenant's site."),
            ("resume", "Serve a suspended tenant again."),
        ):
            actions.add_parser(name, help=help_text).add_argument("slug")

        delete = actions.add_parser("delete", help="Drop a tenant with its data.")
        delete.add_argument("slug")
        delete.add_argument("--yes", action="store_true", help="Confirm the deletion.")

    def handle(self, *args, **options) -> None:
        handler = getattr(self, "handle_" + options["action"].replace("-", "_"))
        try:
            handler(options)
        except TenantError as exc:
            raise CommandError(str(exc)) from exc

    def handle_create(self, options: dict) -> None:
        result = provisioning.tenant_create(
            slug=options["slug"],
            name=options["name"],
            domains=options["domains"],
            plan=options["plan"],
            admin_email=options["admin_email"],
            admin_password=options["admin_password"],
        )
        self.stdout.write(
            f"Created tenant {result.tenant.slug} on plan {options['plan']}."
        )
        self.stdout.write(f"Site:  {result.url}")
        self.stdout.write(f"Admin: {result.url}admin/")
        if result.generated_password:
            self.stdout.write(
                f"Admin login: {result.admin_username} / {result.admin_password} "
                "(generated; shown once)"
            )
        else:
            self.stdout.write(f"Admin login: {result.admin_username}")

    def handle_list(self, options: dict) -> None:
        rows = [tenant_as_dict(tenant) for tenant in tenant_list()]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if not rows:
            self.stdout.write("No tenants.")
            return
        self.stdout.write(f"{'SLUG':<20} {'PLAN':<12} {'STATUS':<10} DOMAIN")
        for row in rows:
            self.stdout.write(
                f"{row['slug']:<20} {row['plan']:<12} {row['status']:<10} "
                f"{row['primary_domain'] or '-'}"
            )

    def handle_show(self, options: dict) -> None:
        row = tenant_as_dict(tenant_get(options["slug"]))
        if options["json"]:
            self.stdout.write(json.dumps(row, indent=2))
            return
        for key in ("slug", "name", "plan", "status", "created", "primary_domain"):
            self.stdout.write(f"{key + ':':<16}{row[key]}")
        self.stdout.write(f"{'domains:':<16}{', '.join(row['domains'])}")

    def handle_set_plan(self, options: dict) -> None:
        tenant = lifecycle.tenant_set_plan(slug=options["slug"], plan=options["plan"])
        self.stdout.write(f"Tenant {tenant.slug} is now on plan {tenant.plan.name}.")

    def handle_add_domain(self, options: dict) -> None:
        domain = lifecycle.tenant_add_domain(slug=options["slug"], host=options["host"])
        self.stdout.write(f"Added {domain.domain} to {options['slug']}.")

    def handle_remove_domain(self, options: dict) -> None:
        lifecycle.tenant_remove_domain(slug=options["slug"], host=options["host"])
        self.stdout.write(f"Removed {options['host'].lower()} from {options['slug']}.")

    def handle_suspend(self, options: dict) -> None:
        lifecycle.tenant_set_status(
            slug=options["slug"], status=Tenant.Status.SUSPENDED
        )
        self.stdout.write(f"Suspended {options['slug']}: its site now answers 503.")

    def handle_resume(self, options: dict) -> None:
        lifecycle.tenant_set_status(slug=options["slug"], status=Tenant.Status.ACTIVE)
        self.stdout.write(f"Resumed {options['slug']}.")

    def handle_delete(self, options: dict) -> None:
        provisioning.tenant_delete(slug=options["slug"], confirm=options["yes"])
        self.stdout.write(
            f"Deleted tenant {options['slug']}, its schema and its media."
        )
