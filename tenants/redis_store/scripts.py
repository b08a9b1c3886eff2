"""Lua scripts on the stateful Redis, composed from one source per rule.

A rule that must run inside another rule's round trip (admission, a rate count, a
page-cache lookup, metering) is written once, as a Lua ``local function`` in the module
that owns the rule; ``compose`` puts the functions a script needs in front of its body.
So the one-round-trip decision of a public page and the stand-alone admission script
run the same lines, not copies.

Each script is registered once per client (connection pool) and process; calling it
sends ``EVALSHA`` and loads the script again if Redis forgot it (a restart, a
``SCRIPT FLUSH``)."""

from tenants.redis_store.keys import state_redis

# Redis' own clock in milliseconds, so hosts with skewed clocks agree.
NOW_MS_LUA = """
local function now_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end
"""

_scripts: dict[tuple[int, str], object] = {}


def compose(*functions: str, body: str) -> str:
    """A script: the rules' function definitions, then ``body`` calling them."""
    return "\n".join([*functions, body])


def script(source: str):
    """The registered script of ``source`` on the stateful Redis."""
    client = state_redis()
    key = (id(client), source)
    registered = _scripts.get(key)
    if registered is None:
        registered = _scripts[key] = client.register_script(source)
    return registered
