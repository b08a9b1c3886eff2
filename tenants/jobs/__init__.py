"""Background work shared by every tenant: the fair queue (round robin across tenants,
in-flight caps, hourly allowances) and the context a task carries (tenant, request id).

Owns: the order of jobs, not what a job does: job kinds register themselves from
``content``.
May import: ``tenants.models``, ``tenants.errors``, ``tenants.redis_store``,
``tenants.observability``, ``tenants.tariffs``, ``tenants.metering``.
"""
