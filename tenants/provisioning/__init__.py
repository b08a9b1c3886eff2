"""A tenant's life: create (clone of the template schema), change (plan, domains,
suspension), export and import, bulk creation, delete, and fleet-wide migrations.

Owns: the schema and media of each tenant as a whole.
May import: ``tenants.registry``, ``tenants.tariffs``, ``tenants.models``,
``tenants.errors``. Content's pages are created through the hook content registers.
"""
