"""django-tenants' PostgreSQL backend, made safe behind a transaction-mode pooler.

With ``TENANT_LIMIT_SET_CALLS`` django-tenants sends ``SET search_path`` once per schema
change and trusts it afterwards (it forgets it on rollbacks). Behind pgbouncer in
transaction mode every transaction may run on another server connection, whose
search_path another client set: a query trusting the old SET would read that client's
tenant. So the schema is sent again as the first statement of every transaction, and of
the first statement after one. With ``CMS_DB_TRANSACTION_POOLING`` the tenant gate runs
each request in one transaction, so all of a request's queries share that SET.

Connections are opened through the database circuit breaker and wait on the server
with a deadline (tenants.resilience.database).
"""

from django_tenants.postgresql_backend.base import (
    DatabaseWrapper as TenantDatabaseWrapper,
)

from tenants.resilience.database import guarded_connect


class DatabaseWrapper(TenantDatabaseWrapper):
    def get_new_connection(self, conn_params):
        parent = super().get_new_connection
        return guarded_connect(lambda: parent(conn_params))

    def _set_autocommit(self, autocommit: bool) -> None:
        super()._set_autocommit(autocommit)
        # A transaction begins or ends: what follows may run on another server
        # connection.
        self.search_path_set_schemas = None
