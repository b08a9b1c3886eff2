"""``manage.py jobs requeue SLUG``: a tenant's unfinished background jobs back in
this pod's fair queue (after a move - which runs it on the target - or a Redis that
lost its data)."""

from django.core.management.base import BaseCommand, CommandError
from redis.exceptions import RedisError

from content.jobs import requeue_unfinished
from tenants.errors import TenantError
from tenants.registry.selectors import tenant_get


class Command(BaseCommand):
    help = "Operate on tenants' background jobs."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        requeue = actions.add_parser(
            "requeue",
            help="Queue a tenant's unfinished jobs again where this pod's fair queue "
            "lacks them (after a move, or a Redis that lost its data).",
        )
        requeue.add_argument("slug", help="The tenant's slug.")

    def handle(self, *args, **options) -> None:
        try:
            tenant = tenant_get(options["slug"])
            count = requeue_unfinished(schema=tenant.schema_name)
        except TenantError as exc:
            raise CommandError(str(exc)) from exc
        except RedisError as exc:
            raise CommandError(f"The job queue (Redis) is unavailable: {exc}") from exc
        self.stdout.write(
            f"{count} unfinished job(s) of {tenant.schema_name} queued again."
        )
