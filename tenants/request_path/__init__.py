"""The path of a request: one decision (resolve -> gate -> admit -> limit -> cache
lookup -> meter) owned by one service, applied by thin adapters (the WSGI edge before
Django, the middleware inside it).

Owns: the order of the rules and the typed decision that travels with a request.
May import: ``tenants.registry``, ``tenants.tariffs``, ``tenants.metering``,
``tenants.observability``, ``tenants.redis_store``, ``tenants.adapters``.
"""
