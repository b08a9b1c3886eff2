"""The default storage when tenant media is in an S3-compatible bucket.

Keys follow the disk's layout (``<prefix>/tenants/<schema>/<name>``), so a tree can be
copied between a disk and a bucket unchanged. URLs stay the platform's own
(``/media/tenants/<schema>/<name>`` on the tenant's hosts, served by
``content.media``): a bucket URL would skip the checks that keep one tenant's files
off another's origin and restricted documents behind Wagtail's view.
"""

import posixpath

from django.conf import settings
from django.db import connection
from django.utils.encoding import filepath_to_uri
from storages.backends.s3 import S3Storage


def tenant_folder(schema: str) -> str:
    """A tenant's folder relative to the media root (disk or bucket prefix)."""
    return settings.MULTITENANT_RELATIVE_MEDIA_ROOT % schema


class TenantS3Storage(S3Storage):
    """``S3Storage`` whose location is the current tenant's folder under the
    configured prefix, read on every call (one storage object serves every tenant,
    like django-tenants' ``TenantFileSystemStorage``)."""

    @property
    def location(self) -> str:
        return posixpath.join(self._prefix, tenant_folder(connection.schema_name))

    @location.setter
    def location(self, value: str) -> None:
        self._prefix = value.strip("/")

    def url(self, name: str, *args, **kwargs) -> str:
        folder = tenant_folder(connection.schema_name)
        return f"{settings.MEDIA_URL}{folder}/{filepath_to_uri(name)}"
