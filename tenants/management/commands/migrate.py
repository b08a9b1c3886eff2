"""``migrate`` = django-tenants' migrate_schemas, plus the template schema.

Running the normal migrate command keeps the template that new tenants are cloned
from in step with the code, and creates it on a fresh database.
"""

from django_tenants.management.commands.migrate_schemas import MigrateSchemasCommand

from tenants.provisioning import ensure_template_schema


class Command(MigrateSchemasCommand):
    def handle(self, *args, **options):
        super().handle(*args, **options)
        if not options.get("schema_name"):
            changed = ensure_template_schema(verbosity=options.get("verbosity", 1))
            if changed and options.get("verbosity", 1) >= 1:
                self.stdout.write("Template schema for new tenants is up to date.")
