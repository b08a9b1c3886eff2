"""Lua scripts on the stateful Redis (tenants.redis_store.scripts): a call sends its
``EVALSHA`` on a connection of the client's pool, so it must behave as a command sent
through the client - a forgotten script loaded again, one reconnect after a dropped
connection, no try at all while the Redis breaker is open, the connection back in
the pool whatever happened, and a pipeline's call queued on the pipeline."""

import pytest
import redis
from django.test import override_settings
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from tenants.redis_store.keys import state_redis
from tenants.redis_store.scripts import script
from tenants.resilience import breakers
from tenants.resilience.redis_client import RedisUnavailable
from tests.tenants.test_resilience import open_breaker

ECHO = "return {KEYS[1], ARGV[1], #KEYS, #ARGV}"
FAILING = "return redis.error_reply('ERR made to fail')"


def in_use() -> int:
    return len(state_redis().connection_pool._in_use_connections)


def test_a_script_answers_with_its_keys_and_arguments_and_returns_its_connection():
    assert script(ECHO)(keys=["k"], args=["a", 2]) == [b"k", b"a", 1, 2]
    assert script("return {#KEYS, ARGV[1]}")(args=["only"]) == [0, b"only"]
    assert in_use() == 0


def test_a_script_redis_forgot_is_loaded_again():
    script(ECHO)(keys=["k"], args=["a"])
    state_redis().script_flush()

    assert script(ECHO)(keys=["k"], args=["b"]) == [b"k", b"b", 1, 1]
    assert state_redis().script_exists(script(ECHO).sha) == [True]


def test_a_connection_the_server_closed_while_idle_is_replaced():
    script(ECHO)(keys=["k"], args=["a"])
    # this pool's idle connections closed by Redis (a restart, a timeout), and no
    # other client's: the server is shared
    pool = state_redis().connection_pool
    closed = []
    for connection in list(pool._available_connections):
        connection.send_command("CLIENT", "ID")
        closed.append(connection.read_response())
    other = redis.ConnectionPool(
        connection_class=pool.connection_class, **pool.connection_kwargs
    )
    for client_id in closed:
        assert redis.Redis(connection_pool=other).client_kill_filter(_id=client_id)
    other.disconnect()
    assert closed

    assert script(ECHO)(keys=["k"], args=["again"]) == [b"k", b"again", 1, 1]
    assert in_use() == 0
    assert state_redis().client_id() not in closed  # a new connection answered


def test_a_connection_that_drops_as_the_script_is_sent_is_reconnected_once(
    monkeypatch,
):
    script(ECHO)(keys=["k"], args=["a"])
    original, drops = AbstractConnection.send_packed_command, []

    def dropping_once(self, *args, **kwargs):
        if not drops:
            drops.append(1)
            self.disconnect()
            raise RedisConnectionError("Connection closed by server.")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", dropping_once)

    assert script(ECHO)(keys=["k"], args=["again"]) == [b"k", b"again", 1, 1]
    assert drops == [1]
    assert in_use() == 0


def test_an_error_reply_is_raised_and_the_connection_stays_usable():
    with pytest.raises(ResponseError, match="made to fail"):
        script(FAILING)()
    assert in_use() == 0
    assert script(ECHO)(keys=["k"], args=["after"])[1] == b"after"


def test_with_the_breaker_open_a_script_is_refused_without_touching_redis(monkeypatch):
    script(ECHO)(keys=["k"], args=["a"])  # connected, the script loaded
    sent = []
    original = AbstractConnection.send_packed_command

    def counting(self, *args, **kwargs):
        sent.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    with override_settings(CMS_BREAKER_COOLDOWN_SECONDS=60):
        open_breaker(breakers.redis)
        with pytest.raises(RedisUnavailable):
            script(ECHO)(keys=["k"], args=["a"])

    assert sent == []  # not a single command reached a socket
    assert in_use() == 0


def test_a_script_called_on_a_pipeline_runs_with_the_pipeline():
    pipe = state_redis().pipeline(transaction=False)
    pipe.set("scripts-test", "1")
    script(ECHO)(keys=["k"], args=["piped"], client=pipe)

    assert pipe.execute() == [True, [b"k", b"piped", 1, 1]]
