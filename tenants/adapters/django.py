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
"""

import threading

from django.db import connections
from django.utils.functional import SimpleLazyObject, empty

_switching = threading.local()


class SchemaScopedContentTypeCache(dict):
    """Stands in for ``ContentTypeManager._cache`` (``{db alias: {key: ct}}``)."""

    @staticmethod
    def _scoped(alias: str) -> tuple[str, str | None]:
        return alias, getattr(connections[alias], "schema_name", None)

    def __getitem__(self, alias: str) -> dict:
        return super().__getitem__(self._scoped(alias))

    def setdefault(self, alias: str, default: dict | None = None) -> dict:
        return super().setdefault(
            self._scoped(alias), {} if default is None else default
        )

    def clear(self) -> None:
        if getattr(_switching, "active", False):
            _switching.active = False
            return
        super().clear()


def skip_clear_on_schema_switch(connection, tenant) -> None:
    """``EXTRA_SET_TENANT_METHOD_PATH`` hook: django-tenants calls it in ``set_tenant``
    just before it clears the content type cache; that one clear is skipped."""
    _switching.active = True


def install_schema_scoped_cache() -> None:
    from django.contrib.contenttypes.models import ContentType

    if not isinstance(ContentType.objects._cache, SchemaScopedContentTypeCache):
        ContentType.objects._cache = SchemaScopedContentTypeCache()


def has_schema_scoped_cache() -> bool:
    from django.contrib.contenttypes.models import ContentType

    return isinstance(ContentType.objects._cache, SchemaScopedContentTypeCache)


def is_unevaluated(value: object) -> bool:
    """A ``SimpleLazyObject`` whose function has not run yet."""
    return isinstance(value, SimpleLazyObject) and value._wrapped is empty
