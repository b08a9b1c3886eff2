"""A tenant's files as one tree, on disk or in a bucket.

A tree is a Django storage rooted at one folder of the media root: a tenant's own
(its schema name), or a restore's or an import's staging folder beside it. Copies
keep names exactly (a tree's storage overwrites instead of inventing a new name), so
a copy is the same tree, and a media location - a directory path or
``s3://bucket/prefix`` - names where a pod keeps its trees, for moves between pods.
"""

import os
import posixpath
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage
from storages.backends.s3 import S3Storage

from tenants.errors import TenantError
from tenants.media.storage import tenant_folder

S3_SCHEME = "s3://"


class MediaError(TenantError):
    """A tree could not be read or written as asked."""


def location() -> str:
    """This process's media location: the bucket when one is configured, else
    MEDIA_ROOT."""
    if settings.CMS_MEDIA_S3_BUCKET:
        prefix = settings.CMS_MEDIA_S3_PREFIX.strip("/")
        return f"{S3_SCHEME}{settings.CMS_MEDIA_S3_BUCKET}/{prefix}"
    return str(Path(settings.MEDIA_ROOT).resolve())


def tree(folder: str, *, at: str | None = None) -> Storage:
    """The tree of ``folder`` (a schema name, or a staging folder beside them) at
    the media location ``at`` (this process's by default)."""
    if not folder or "/" in folder or folder in (".", ".."):
        raise MediaError(f"Not a media folder name: {folder!r}.")
    at = at or location()
    relative = tenant_folder(folder)
    if at.startswith(S3_SCHEME):
        bucket, _, prefix = at[len(S3_SCHEME) :].partition("/")
        return S3Storage(
            bucket_name=bucket,
            location=posixpath.join(prefix.strip("/"), relative),
            endpoint_url=settings.CMS_MEDIA_S3_ENDPOINT or None,
            file_overwrite=True,
            default_acl=None,
        )
    return FileSystemStorage(location=Path(at) / relative, allow_overwrite=True)


def _is_local(storage: Storage) -> bool:
    return isinstance(storage, FileSystemStorage)


def same_place(one: Storage, other: Storage) -> bool:
    """Whether two trees are the same files (a pod move on shared storage)."""
    if _is_local(one) and _is_local(other):
        return Path(one.location).resolve() == Path(other.location).resolve()
    if isinstance(one, S3Storage) and isinstance(other, S3Storage):
        return (one.bucket_name, one.location, one.endpoint_url) == (
            other.bucket_name,
            other.location,
            other.endpoint_url,
        )
    return False


def names(storage: Storage) -> list[str]:
    """Every file of the tree, by its name relative to the tree, sorted."""
    if _is_local(storage):
        root = Path(storage.location)
        found = []
        for directory, _, files in os.walk(root):
            for file in files:
                found.append((Path(directory) / file).relative_to(root).as_posix())
        return sorted(found)
    if isinstance(storage, S3Storage):
        prefix = storage.location.strip("/") + "/"
        return sorted(
            item.key[len(prefix) :]
            for item in storage.bucket.objects.filter(Prefix=prefix)
            if not item.key.endswith("/")
        )
    return sorted(_walk(storage, ""))


def _walk(storage: Storage, folder: str) -> Iterator[str]:
    directories, files = storage.listdir(folder)
    for file in files:
        yield posixpath.join(folder, file)
    for directory in directories:
        yield from _walk(storage, posixpath.join(folder, directory))


def safe_name(name: str) -> str:
    """``name`` if it stays inside a tree (an archive's member, say), else refused."""
    normal = posixpath.normpath(name)
    if (
        not name
        or name.startswith("/")
        or normal.startswith("..")
        or normal in (".", "")
        or "\\" in name
    ):
        raise MediaError(f"Refusing unsafe media path {name!r}.")
    return normal


def write(storage: Storage, name: str, source: IO[bytes]) -> None:
    """Write ``source`` as ``name`` exactly (replacing a file of that name)."""
    name = safe_name(name)
    stored = storage.save(name, File(source, name=posixpath.basename(name)))
    if stored != name:
        raise MediaError(f"{name!r} was stored as {stored!r}.")


def copy_tree(source: Storage, target: Storage) -> int:
    """Copy every file of ``source`` into ``target`` (same names); returns the count.
    Files of ``target`` that ``source`` lacks are kept."""
    if same_place(source, target):
        return 0
    if _is_local(source) and _is_local(target):
        if not Path(source.location).exists():
            return 0
        shutil.copytree(source.location, target.location, dirs_exist_ok=True)
        return len(names(source))
    copied = 0
    for name in names(source):
        with source.open(name, "rb") as file:
            write(target, name, file)
        copied += 1
    return copied


def delete_tree(storage: Storage) -> None:
    """Remove the tree and every file in it; nothing to do when it is absent."""
    if _is_local(storage):
        shutil.rmtree(storage.location, ignore_errors=True)
        return
    if isinstance(storage, S3Storage):
        prefix = storage.location.strip("/") + "/"
        storage.bucket.objects.filter(Prefix=prefix).delete()
        return
    for name in names(storage):
        storage.delete(name)


def replace_tree(live: Storage, incoming: Storage, keep_as: Storage) -> None:
    """Make ``incoming``'s files the live ones, keeping the replaced ones as
    ``keep_as`` (an undo, or a rollback), and empty ``incoming``.

    On disk: two renames. In a bucket (no rename there): the live files are copied
    aside, the incoming ones copied over them, then the live files the incoming tree
    lacks are deleted, so every file either state references stays readable
    throughout."""
    if _is_local(live) and _is_local(incoming) and _is_local(keep_as):
        live_path, incoming_path = Path(live.location), Path(incoming.location)
        if live_path.exists():
            live_path.replace(keep_as.location)
        if incoming_path.exists():
            incoming_path.replace(live_path)
        else:
            live_path.mkdir(parents=True, exist_ok=True)
        return
    copy_tree(live, keep_as)
    copy_tree(incoming, live)
    wanted = set(names(incoming))
    for name in names(live):
        if name not in wanted:
            live.delete(name)
    delete_tree(incoming)


def local_root(storage: Storage) -> Path | None:
    """The tree's directory when it is on this host's disk (served by path), else
    None (read through the storage)."""
    return Path(storage.location) if _is_local(storage) else None
