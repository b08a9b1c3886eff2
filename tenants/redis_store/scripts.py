"""Lua scripts on the stateful Redis, composed from one source per rule.

A rule that must run inside another rule's round trip (admission, a rate count, a
page-cache lookup, metering) is written once, as a Lua ``local function`` in the module
that owns the rule; ``compose`` puts the functions a script needs in front of its body.
So the one-round-trip decision of a public page and the stand-alone admission script
run the same lines, not copies.

Each script is registered once per client (connection pool) and process; calling it
sends ``EVALSHA`` and loads the script again if Redis forgot it (a restart, a
``SCRIPT FLUSH``).

A call outside a pipeline takes a connection from the client's pool and sends the
``EVALSHA`` itself rather than through the client's command machinery (argument
checks, retry closures, operation metrics): on a cached page this round trip is most
of the Python a hit runs, and the machinery cost about a twentieth of the hit
(measured interleaved in one process: a hit took 0.95x the time without it). The
connection is the pool's own (the Redis breaker's guarded connection), so timeouts,
the breaker and a reconnect after a dropped connection behave as in any other call:
one more try after a connection error, none after a timeout."""

from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from tenants.redis_store.keys import state_redis

# Redis' own clock in milliseconds, so hosts with skewed clocks agree.
NOW_MS_LUA = """
local function now_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end
"""


class Script:
    """A Lua script registered on one client: ``script(keys=..., args=...)`` runs it
    with the client's pool, ``client=pipe`` queues it on a pipeline."""

    def __init__(self, client: Any, source: str) -> None:
        self.client = client
        self.registered = client.register_script(source)  # redis-py's, for pipelines

    @property
    def sha(self) -> str:
        """The script's SHA1, for an ``EVALSHA`` queued on a pipeline by hand."""
        return self.registered.sha

    def __call__(
        self,
        keys: Sequence[Any] = (),
        args: Sequence[Any] = (),
        client: Any = None,
    ) -> Any:
        if client is not None and client is not self.client:
            return self.registered(keys=keys, args=args, client=client)
        pool = self.client.connection_pool
        connection = pool.get_connection()
        try:
            try:
                return self._run(connection, keys, args)
            except RedisConnectionError:
                # a dropped connection: reconnect once (with the Redis breaker open
                # the second try is refused as well, before any socket)
                connection.disconnect()
                return self._run(connection, keys, args)
        finally:
            pool.release(connection)

    def _run(self, connection: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        command = ("EVALSHA", self.sha, len(keys), *keys, *args)
        connection.send_command(*command)
        try:
            return connection.read_response()
        except NoScriptError:  # Redis forgot it (a restart, SCRIPT FLUSH)
            connection.send_command("SCRIPT", "LOAD", self.registered.script)
            connection.read_response()
            connection.send_command(*command)
            return connection.read_response()


_scripts: dict[tuple[int, str], Script] = {}


def compose(*functions: str, body: str) -> str:
    """A script: the rules' function definitions, then ``body`` calling them."""
    return "\n".join([*functions, body])


def script(source: str) -> Script:
    """The registered script of ``source`` on the stateful Redis."""
    client = state_redis()
    key = (id(client), source)
    registered = _scripts.get(key)
    if registered is None:
        registered = _scripts[key] = Script(client, source)
    return registered
