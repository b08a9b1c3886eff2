"""How the platform behaves when a dependency hangs or dies.

Owns: the circuit breaker of each dependency (``breakers``: PostgreSQL, Redis, the
Celery broker), the client-side deadlines on PostgreSQL statements per request kind
(``database``, the one adapter to psycopg's wait internals), Redis connections that
report to their breaker (``redis_client``), the pool's database slots that keep
workers free for cached pages and probes (``worker_reserve``), and the fast 503 a
request gets while a dependency is out (``outage``, ``middleware``).

May import: Django, psycopg, redis-py, ``tenants.observability.metrics`` and
``tenants.errors``. Nothing here imports ``content`` or the request decision
(``tenants.request_path``, ``tenants.tariffs``): they call in, not the other way.
"""
