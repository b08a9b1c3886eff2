"""Statement timeouts for the connections made beside Django's (the readiness
probe, the edge router's plan sync): psycopg connections of their own.

A timeout given as the connection's startup option (``options=-c
statement_timeout=...``) is ignored behind pgbouncer in transaction mode, which is
told to ignore that option (deploy/README.md), and a session-level ``SET`` there would
stay on a server connection that other clients use next. ``SET LOCAL`` inside the
transaction holds on either path: straight to PostgreSQL or through the pooler.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


@contextmanager
def bounded_transaction(conn: psycopg.Connection, milliseconds: int) -> Iterator[None]:
    """A transaction whose statements the server cancels after ``milliseconds``
    each (``psycopg.errors.QueryCanceled``); a wait for a lock counts."""
    with conn.transaction():
        conn.execute(f"SET LOCAL statement_timeout = {int(milliseconds)}")
        yield
