"""``manage.py seed_demo``: the two demo tenants `make up` serves."""

from django.core.management.base import BaseCommand

from content.demo import EDITOR_USERNAME, seed_demo
from tenants.provisioning.creation import DEFAULT_ADMIN_USERNAME


class Command(BaseCommand):
    help = "Create the demo tenants acme and globex (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--only",
            action="append",
            metavar="SLUG",
            help="Only this demo tenant (repeat for more): each pod seeds its own.",
        )

    def handle(self, *args, **options) -> None:
        for demo, url in seed_demo(options["only"]):
            self.stdout.write(
                f"{demo.name}: {url}  admin {url}admin/\n"
                f"    editor: {EDITOR_USERNAME} / {demo.editor_password}    "
                f"admin: {DEFAULT_ADMIN_USERNAME} / {demo.slug}-admin-demo"
            )
