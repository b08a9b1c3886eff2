"""Background work shared by every tenant: the fair queue (round robin across tenants,
in-flight caps from the plan, hourly allowances), its lanes (publishing, webhook
deliveries: each a fair queue, Celery queue and cap of its own), the registry of job
kinds, and the context a task carries (tenant, request id).

Owns: the order of jobs, not what a job does: the kinds of job register themselves
with ``tenants.jobs.kinds`` from ``content``'s ``AppConfig.ready``; nothing here knows
a content task's name or result.
May import: ``tenants.models``, ``tenants.errors``, ``tenants.redis_store``,
``tenants.observability``, ``tenants.tariffs``, ``tenants.metering``. Never ``content``.
"""
