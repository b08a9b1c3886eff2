"""Which tenants and domains exist and how a host finds its tenant.

Owns: host -> tenant resolution (cached per process), reads of tenants and plans
(selectors), slug and host validation, each tenant's Wagtail Site.
May import: ``tenants.models``, ``tenants.errors``, ``tenants.redis_store``,
``tenants.adapters``, ``tenants.tariffs.features``.
"""
