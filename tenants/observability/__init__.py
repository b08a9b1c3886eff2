"""Seeing one tenant in a shared pool: request ids, log context, one access event per
request, Prometheus metrics with bounded tenant labels, health and readiness probes.

Owns: what a request or task leaves behind for operators.
May import: ``tenants.models``, ``tenants.metering``, ``tenants.redis_store``,
``tenants.registry``, ``tenants.request_path.client_address`` (a leaf: who the
client is).
"""
