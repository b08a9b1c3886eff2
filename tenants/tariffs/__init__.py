"""Plans and their enforcement: rate limits, the concurrency cap (admission), quotas
on what a tenant stores, and feature switches and counts.

Owns: every rule that says how much of the shared pool or of storage a tenant may use.
May import: ``tenants.models``, ``tenants.errors``, ``tenants.redis_store``,
``tenants.adapters``, ``tenants.registry``,
``tenants.request_path.client_address`` (a leaf: who the client is).
"""
