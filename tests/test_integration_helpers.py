"""The helpers integration tests and benchmarks start their servers with."""

import random
import socket

from bench import common
from tests import integration


def _ports_free_now(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def test_free_port_never_hands_out_the_same_port_twice(monkeypatch):
    """Servers started together (50 pools, two pods and a router) pick all their
    ports before any binds: a repeated pick gave two pools one port. The tests and
    the benchmarks share the one picker."""
    assert integration.free_port is common.free_port
    first, second = _ports_free_now(2)
    monkeypatch.setattr(common, "_handed_out", set())
    monkeypatch.setattr(random, "sample", lambda population, k: [first, first, second])

    assert integration.free_port() == first
    assert integration.free_port() == second
