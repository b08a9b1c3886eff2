"""The stateful Redis: one way to name a key (tenant, purpose, environment prefix) and
the Lua scripts that run there.

May import: nothing of ``tenants`` but settings.
"""
