"""django-tenants' PostgreSQL backend, made safe behind a transaction-mode pooler.

With ``TENANT_LIMIT_SET_CALLS`` django-tenants sends ``SET search_path`` once per schema
change and trusts it afterwards (it forgets it on rollbacks). Behind pgbouncer in
transaction mode every transaction may run on another server connection, whose
search_path another client set: a query trusting the old SET would read that client's
tenant. So the schema is sent again as the first statement of every transaction, and of
the first statement after one. With ``CMS_DB_TRANSACTION_POOLING`` the tenant gate runs
each request in one transaction, so all of a request's queries share that SET.

Behind such a pooler the settings' ``statement_timeout`` (a startup option) is lost:
pgbouncer cannot keep a startup parameter per client, so it is told to ignore it, and
a runaway statement would run on the server unbounded after the client gave up. So
with ``CMS_DB_TRANSACTION_POOLING`` the same ``SET search_path`` statement sets the
timeout as well: one round trip, on whichever server connection the transaction got.

Connections are opened through the database circuit breaker and wait on the server
with a deadline (tenants.resilience.database).
"""

from typing import Any

from django.conf import settings
from django_tenants.postgresql_backend.base import (
    DatabaseWrapper as TenantDatabaseWrapper,
)

from tenants.resilience.database import guarded_connect


class _TimeoutFirst:
    """The cursor django-tenants sends ``SET search_path`` on, with ``SET
    statement_timeout`` sent in the same statement (opened on first use when
    django-tenants would have opened one itself)."""

    def __init__(self, wrapper: "DatabaseWrapper", cursor: Any) -> None:
        self._wrapper = wrapper
        self._cursor = cursor
        self.opened = None

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        if self._cursor is None:
            self._cursor = self.opened = self._wrapper.connection.cursor()
        timeout = int(settings.DB_STATEMENT_TIMEOUT_MS)
        return self._cursor.execute(
            f"SET statement_timeout = {timeout}; {sql}", *args, **kwargs
        )


class DatabaseWrapper(TenantDatabaseWrapper):
    def get_new_connection(self, conn_params):
        parent = super().get_new_connection
        return guarded_connect(lambda: parent(conn_params))

    def _set_autocommit(self, autocommit: bool) -> None:
        super()._set_autocommit(autocommit)
        # A transaction begins or ends: what follows may run on another server
        # connection.
        self.search_path_set_schemas = None

    def _handle_search_path(self, cursor=None):
        if not settings.CMS_DB_TRANSACTION_POOLING:
            super()._handle_search_path(cursor)
            return
        timed = _TimeoutFirst(self, cursor)
        try:
            super()._handle_search_path(timed)
        finally:
            if timed.opened is not None:
                timed.opened.close()
