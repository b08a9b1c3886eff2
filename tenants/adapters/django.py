"""Django's private names, used in this module only.

- The content type cache (``ContentTypeManager._cache``), kept per schema instead of
  dropped at every switch (below).
- Whether a lazy object (``request.user``) was evaluated
  (``SimpleLazyObject._wrapped``), so that logging a request never loads its session.

Django's content type cache, kept per schema instead of dropped at every switch:

Content type ids are rows of each schema's own ``django_content_type`` table, so they
may differ between schemas. django-tenants therefore empties Django's process-wide
content type cache every time a connection changes schema - which the tenant gate does
on every request - and each page request then spends queries re-reading content types
that a single-tenant site reads once per process.

Here the cache is keyed by the schema the asking thread's connection is in (connections
are per thread, so threads serving two tenants never see each other's ids), and the
clear that django-tenants issues right after a schema change is skipped: nothing was
written, another schema's ids simply live under another key. Every other clear (after
migrations create or remove content types, in tests) still empties the whole cache.

A schema's content types may also come from a table shared by every process (``shared``,
installed by tenants.registry: the schema's rows in Redis, per host-map generation). A
fresh worker - one gunicorn recycled, or a pool just started - otherwise reads content
types again for every tenant it meets, which on a fleet of a thousand tenants is
nearly every page it serves. A content type the shared rows do not know (created
since they were stored) is still read by Django's own query. The rules:

- the clear django-tenants issues after a schema switch is skipped (above);
- ``forget_content_types`` (the host map, when the generation changes) empties this
  process's cache; the new generation's shared rows are used from then on;
- any other clear (Django's, after migrations create or rename content types; tests)
  empties this process's cache and stops using shared rows until the next generation
  change: they may predate the change being made. The end of a migration bumps the
  generation (tenants.registry.resolution), so every other process drops them too.
"""

import threading
from collections.abc import Callable, Mapping

from django.db import connections
from django.utils.functional import SimpleLazyObject, empty

_switching = threading.local()

# (db alias, schema) -> the schema's rows {id: (app_label, model)}, or None
SharedRows = Callable[[str, str], Mapping[int, tuple[str, str]] | None]


class _SchemaContentTypes(dict):
    """One schema's part of the cache (``{id or (app_label, model): ct}``); a key it
    lacks is looked up in the shared rows (read once) before Django queries."""

    def __init__(self, alias: str, schema: str | None, shared: SharedRows | None):
        super().__init__()
        self._alias, self._schema, self._shared = alias, schema, shared
        self._rows: Mapping[int, tuple[str, str]] | None = None
        self._names: dict[tuple[str, str], int] | None = None

    def __missing__(self, key):
        if self._shared is None or self._schema is None:
            raise KeyError(key)
        if self._rows is None:
            self._rows = self._shared(self._alias, self._schema) or {}
            self._names = {names: pk for pk, names in self._rows.items()}
        pk = self._names.get(key) if isinstance(key, tuple) else key
        if pk not in self._rows:
            raise KeyError(key)  # Django reads it from the database
        from django.contrib.contenttypes.models import ContentType

        app_label, model = self._rows[pk]
        ct = ContentType.from_db(
            self._alias, ["id", "app_label", "model"], [pk, app_label, model]
        )
        self[pk] = self[(app_label, model)] = ct
        return ct


class SchemaScopedContentTypeCache(dict):
    """Stands in for ``ContentTypeManager._cache`` (``{db alias: {key: ct}}``)."""

    def __init__(self, shared: SharedRows | None = None) -> None:
        super().__init__()
        self.shared = shared
        self.sharing = True

    @staticmethod
    def _scoped(alias: str) -> tuple[str, str | None]:
        return alias, getattr(connections[alias], "schema_name", None)

    def __getitem__(self, alias: str) -> dict:
        return super().__getitem__(self._scoped(alias))

    def __missing__(self, scoped: tuple[str, str | None]) -> dict:
        inner = _SchemaContentTypes(*scoped, self.shared if self.sharing else None)
        super().__setitem__(scoped, inner)
        return inner

    def setdefault(self, alias: str, default: dict | None = None) -> dict:
        return self[alias]

    def clear(self) -> None:
        if getattr(_switching, "active", False):
            _switching.active = False
            return
        super().clear()
        self.sharing = False

    def forget(self) -> None:
        super().clear()
        self.sharing = True


def skip_clear_on_schema_switch(connection, tenant) -> None:
    """``EXTRA_SET_TENANT_METHOD_PATH`` hook: django-tenants calls it in ``set_tenant``
    just before it clears the content type cache; that one clear is skipped."""
    _switching.active = True


def install_schema_scoped_cache(shared: SharedRows | None = None) -> None:
    from django.contrib.contenttypes.models import ContentType

    if not isinstance(ContentType.objects._cache, SchemaScopedContentTypeCache):
        ContentType.objects._cache = SchemaScopedContentTypeCache(shared)
    else:
        ContentType.objects._cache.shared = shared


def forget_content_types() -> None:
    """Empty this process's content type cache for a new generation, whose shared
    rows it may use again."""
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects._cache.forget()


def has_schema_scoped_cache() -> bool:
    from django.contrib.contenttypes.models import ContentType

    return isinstance(ContentType.objects._cache, SchemaScopedContentTypeCache)


def is_unevaluated(value: object) -> bool:
    """A ``SimpleLazyObject`` whose function has not run yet."""
    return isinstance(value, SimpleLazyObject) and value._wrapped is empty
