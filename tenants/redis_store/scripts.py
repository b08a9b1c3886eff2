"""Lua scripts on the Redis that holds counters, slots and queues.

Each script is registered once per client (connection pool) and process; calling it
sends ``EVALSHA`` and loads the script again if Redis forgot it (a restart, a
``SCRIPT FLUSH``)."""

from django_redis import get_redis_connection

_scripts: dict[tuple[int, str], object] = {}


def script(source: str):
    """The registered script of ``source`` on the ``ratelimit`` cache's Redis."""
    client = get_redis_connection("ratelimit")
    key = (id(client), source)
    registered = _scripts.get(key)
    if registered is None:
        registered = _scripts[key] = client.register_script(source)
    return registered
