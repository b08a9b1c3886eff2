"""``migrate`` = the public schema, then the template, then every tenant in parallel.

Keeps django-tenants' options: ``--schema X`` migrates one schema as before. Without
it, tenants are migrated by ``tenants.provisioning.fleet`` (parallel, with progress
and a summary, resumable), and the template new tenants are cloned from is migrated
first.
"""

import os

from django.core.management.base import CommandError
from django_tenants.management.commands.migrate_schemas import MigrateSchemasCommand

from tenants.provisioning.fleet import ProgressBar, migrate_fleet


class Command(MigrateSchemasCommand):
    def add_arguments(self, parser):
        super().add_arguments(parser)
        # django-tenants adds --schema without help; argparse has no public handle on
        # an option once added, so the text is set on its action.
        for action in parser._actions:
            if "--schema" in action.option_strings and not action.help:
                action.help = (
                    "Migrate this one schema only (django-tenants' own path), "
                    "instead of the public schema, the template and every tenant."
                )
        parser.add_argument(
            "--tenant-parallel",
            type=int,
            default=int(os.environ.get("CMS_MIGRATE_PARALLEL", 2)),
            help="Tenants migrated at once (default 2, or CMS_MIGRATE_PARALLEL).",
        )

    def handle(self, *args, **options):
        if options.get("schema_name") or options.get("app_label"):
            return super().handle(*args, **options)
        super().handle(*args, **{**options, "shared": True, "tenant": False})
        verbosity = options.get("verbosity", 1)
        result = migrate_fleet(
            parallel=options["tenant_parallel"],
            progress=(lambda total: ProgressBar(total, "Migrating tenants"))
            if verbosity
            else None,
        )
        if verbosity:
            self.stdout.write(fleet_summary(result))
        if result.failed:
            raise CommandError(
                f"{len(result.failed)} tenant(s) failed to migrate; run migrate again "
                "to retry them (finished tenants are skipped)."
            )
        return None


def fleet_summary(result) -> str:
    lines = [
        f"Tenants: {result.total}, migrated {len(result.migrated)}, "
        f"already up to date {result.up_to_date}, failed {len(result.failed)}, "
        f"in {result.seconds:.1f} s."
    ]
    lines += [f"  FAILED {schema}: {error}" for schema, error in result.failed.items()]
    return "\n".join(lines)
