"""Usage per tenant and day: for billing, the tenant's Usage page, operators' reports.

Owns: the counters in Redis, their flush into ``UsageDay`` rows, the reports and views.
May import: ``tenants.models``, ``tenants.errors``, ``tenants.redis_store``,
``tenants.tariffs`` (storage, pages and users snapshots).
"""
