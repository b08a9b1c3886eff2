"""redis-py internals the platform relies on, in one place.

A subscription's socket: tenants.request_path.local_hits polls it (non-blocking)
before every page it answers from memory, and compares it after reading, since
redis-py reconnects a subscription on its own (and messages sent meanwhile are lost).
"""

import socket


def subscription_socket(pubsub) -> socket.socket | None:
    """The socket of a subscribed ``redis.client.PubSub``, None when it has none."""
    connection = pubsub.connection
    return None if connection is None else connection._sock
