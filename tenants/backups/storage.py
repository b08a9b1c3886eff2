"""Where backup archives live: Django's ``backups`` storage (a folder under var/ by
default; an S3-compatible bucket through django-storages in production), each
archive with the SHA-256 of its bytes recorded when it was written.

An archive is only ever used after its bytes were read back and their checksum
matched the recorded one (``fetch_verified``): a corrupted or truncated archive is
refused before anything is changed.
"""

import hashlib
from pathlib import Path
from typing import IO

from django.core.files import File
from django.core.files.storage import Storage, storages

from tenants.errors import TenantError

CHUNK = 1 << 20


class BackupCorrupted(TenantError):
    """The stored archive's bytes do not match the checksum taken when it was made."""


class BackupMissing(TenantError):
    """The backup's archive is not in the storage."""


def backup_storage() -> Storage:
    return storages["backups"]


def stream_sha256(source: IO[bytes]) -> str:
    """SHA-256 of what ``source`` has left to read, read in chunks."""
    digest = hashlib.sha256()
    while chunk := source.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    with Path(path).open("rb") as source:
        return stream_sha256(source)


def store_archive(*, local_path: Path, name: str) -> tuple[str, str, int]:
    """Copy a local archive into the storage; returns (stored name, sha256, size)."""
    checksum = file_sha256(local_path)
    size = Path(local_path).stat().st_size
    with Path(local_path).open("rb") as source:
        stored = backup_storage().save(name, File(source, name=Path(name).name))
    return stored, checksum, size


def fetch_verified(*, name: str, sha256: str, into: Path) -> Path:
    """Copy a stored archive to the local folder ``into``, checking its SHA-256 on
    the way; raise ``BackupCorrupted`` (and keep nothing) when it differs."""
    storage = backup_storage()
    if not name or not storage.exists(name):
        raise BackupMissing(f"The archive {name!r} is not in the backup storage.")
    target = Path(into) / Path(name).name
    digest = hashlib.sha256()
    with storage.open(name, "rb") as source, target.open("wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != sha256:
        target.unlink(missing_ok=True)
        raise BackupCorrupted(
            f"The archive {name} fails its checksum (recorded {sha256[:12]}..., "
            f"read {digest.hexdigest()[:12]}...): it is corrupted and will not be "
            "restored."
        )
    return target


def delete_archive(name: str) -> None:
    if name:
        backup_storage().delete(name)
