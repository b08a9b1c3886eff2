"""Tenants' media folders on this host's disk, for tests that look at the files."""

from pathlib import Path

from django.conf import settings

from tenants.media import trees


def tenant_media_dir(schema: str) -> Path:
    """The tenant's folder under MEDIA_ROOT (whether or not the storage uses it)."""
    return trees.local_root(trees.tree(schema, at=str(Path(settings.MEDIA_ROOT))))
