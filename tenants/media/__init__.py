"""Where tenants' uploaded files live, on every path that touches them.

Wagtail writes uploads and renditions through Django's default storage: a folder per
tenant under MEDIA_ROOT (``MEDIA_ROOT/tenants/<schema>/``) on a single host, or the same
layout of keys in an S3-compatible bucket (``CMS_MEDIA_S3_BUCKET``) when pods or
several web hosts must see the same files (``storage``). The platform's own doors -
serving (``content.media``), export and import, backup and restore, deletion and a
pod move - work on a tenant's files as a *tree* (``trees``): a storage rooted at one
tenant folder, the same operations on disk and in a bucket.
"""
