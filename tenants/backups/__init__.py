"""Backups a tenant can trust: scheduled snapshots in a storage backend with a
checksum each, restore in place without downtime (shadow schema, verify, atomic
swap, undo), staging copies, and tenants' own data exports.

Owns ``Backup``, ``Restore`` and ``DataExport`` (public schema), the backup storage
(``storage``), the schedule and retention (``scheduling``), the in-place restore
(``restore``), staging clones (``clone``) and the portable data export
(``data_export``); the write freeze during a swap (``freeze``); the tenant admin's
export views (``data_export_views``) and the operator's backup page
(``ops_views``).

Reuses the archive format of ``tenants.provisioning.portability`` and the template
clone of ``tenants.provisioning.cloning``. May import Django, Wagtail's models (for
the data export and the restore's page render), ``tenants.models``, ``tenants.errors``,
``tenants.audit``, ``tenants.provisioning``, ``tenants.registry``, ``tenants.tariffs``
and ``tenants.jobs``. Never ``content``.
"""
