"""The append-only audit trail: who did what to which tenant, when, from where, with
the state before and after.

Owns ``AuditEntry`` (a public-schema table that refuses UPDATE and DELETE, in the
ORM and by a database trigger), ``record_audit`` (the one way to write an entry, for
services of every package), the actor of a change (``Actor``: an operator at a
command line or the ops pages, a tenant's user, the system), the receivers for
security events Django raises (failed logins, user and permission changes), the
``tenants audit`` selector and the tenant's own admin view.

May import: Django, Wagtail (the admin view), ``tenants.models``, ``tenants.errors``.
Must not import other ``tenants`` sub-packages (they import this one) or ``content``.
"""
