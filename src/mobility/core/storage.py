"""Stored files: one small interface, two implementations chosen by configuration (`open_storage`).

- `LocalDiskStorage`: files under a directory of this host (default `data/files`), the embedded
  default, for an installation with one API host.
- `S3Storage` (core/s3storage.py, imported only when configured): a bucket of an S3-compatible object
  store, which several API hosts share.

Files are stored by content: a file's key is made from the sha256 of its bytes
(`[namespace/]sha256/ab/abcdef...`), never from a name or path a client gave, so no upload chooses where
it lands or replaces another file, and the same bytes stored twice are one file. The optional namespace
(the documents service passes the tenant's id) keeps one tenant's files apart from another's: the same
bytes uploaded in two tenants are two files, and a tenant's files can be listed or removed together.
The name a person gave a file is data of the row that refers to it (core/uploads.py makes it safe).

Storing is two steps, so that nothing half-written is ever visible under a key:
1. `stage(chunks)` streams the bytes into a private temporary file on local disk (mode 0600), computing
   their sha256 and size as they pass. A stream that fails half-way (a client gone, a size cap passed,
   a cancelled request) leaves nothing: the temporary file is removed before the error goes on.
2. `commit(staged)` makes the complete file appear under its key at once: on disk a hard link from the
   staging directory, which lies in the same file system, into place (the file is fsync'ed first); on S3
   one PutObject, which the store shows only once all of it has arrived.
`put(chunks)` does both. Services do not call them directly: `core.files.store` stores through the
request's session, so that the file follows its transaction (removed again if it rolls back).

Keys given to `open`, `exists` and `delete` are checked against the key pattern (`check_key`): a key
comes from a database row, and even a damaged row cannot name a path outside the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING

import anyio.to_thread

if TYPE_CHECKING:
    from mobility.core.config import Settings

logger = logging.getLogger(__name__)

CHUNK_SIZE = 64 * 1024
# A namespace is one path segment of lowercase letters, digits and dashes: a UUID fits, `..` cannot.
_NAMESPACE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_KEY = re.compile(r"(?:[a-z0-9][a-z0-9-]{0,63}/)?sha256/([0-9a-f]{2})/\1[0-9a-f]{62}")


class InvalidKey(ValueError):
    """A key that no file of the store can have (a damaged row, or a key built by hand)."""


class FileMissing(LookupError):
    """No file is stored under the key (deleted, or never stored)."""


def content_key(sha256: str, namespace: str | None = None) -> str:
    """The key of the file whose content has this sha256 (hex), within `namespace` if given."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise InvalidKey(f"not a sha256 in lowercase hex: {sha256!r}")
    if namespace is not None and not _NAMESPACE.fullmatch(namespace):
        raise InvalidKey(f"not a namespace (lowercase letters, digits, dashes): {namespace!r}")
    key = f"sha256/{sha256[:2]}/{sha256}"
    return f"{namespace}/{key}" if namespace else key


def check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidKey(f"not a storage key: {key!r}")
    return key


@dataclass(frozen=True)
class StoredFile:
    key: str
    sha256: str
    size: int
    # False when a file with these bytes was already stored under the key (nothing was written).
    created: bool


@dataclass
class StagedFile:
    """Bytes streamed in completely, in a private temporary file: visible under no key yet."""

    path: Path
    sha256: str
    size: int

    def discard(self) -> None:
        """Remove the temporary file (done after commit too: what is left of it goes)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


@dataclass
class Download:
    """A stored file being read: its size, and its bytes as an async iterator of chunks. The file (or
    the object store's response) is closed when the iterator ends or is closed (`aclose`)."""

    size: int
    chunks: AsyncIterator[bytes]


class FileStorage(ABC):
    """The storage contract; tests/core/test_storage.py runs the same tests on every implementation."""

    staging_dir: Path
    # Staged files older than this are left-overs of a process that died mid-upload: removed when a
    # storage is opened.
    STALE_STAGING_SECONDS = 24 * 3600

    def _prepare_staging(self, staging_dir: Path) -> None:
        self.staging_dir = Path(staging_dir).resolve()
        self.staging_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        cutoff = time.time() - self.STALE_STAGING_SECONDS
        for path in self.staging_dir.glob("*.part"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()

    async def put(self, chunks: AsyncIterable[bytes], *, namespace: str | None = None) -> StoredFile:
        staged = await self.stage(chunks)
        try:
            return await self.commit(staged, namespace=namespace)
        finally:
            staged.discard()

    async def stage(self, chunks: AsyncIterable[bytes]) -> StagedFile:
        """Stream `chunks` into a private temporary file, hashing them on the way (see module doc)."""
        path = self.staging_dir / f"{secrets.token_hex(16)}.part"
        file: IO[bytes] = await anyio.to_thread.run_sync(_create_private, path)
        digest = hashlib.sha256()
        size = 0
        try:
            async for chunk in chunks:
                if not chunk:
                    continue
                digest.update(chunk)
                size += len(chunk)
                await anyio.to_thread.run_sync(file.write, chunk)
            await anyio.to_thread.run_sync(_flush_to_disk, file)
        except BaseException:
            # Synchronously: a cancelled task may not get to await another thread.
            file.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            raise
        file.close()
        return StagedFile(path=path, sha256=digest.hexdigest(), size=size)

    @abstractmethod
    async def commit(self, staged: StagedFile, *, namespace: str | None = None) -> StoredFile:
        """Make the staged file visible under its content key, complete, at once."""

    @abstractmethod
    async def open(self, key: str) -> Download:
        """The stored file under `key`; FileMissing if there is none (raised here, not while reading,
        so that an answer is chosen before it starts)."""

    @abstractmethod
    async def exists(self, key: str) -> bool: ...

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the file under `key`; a key with no file is no error. Callers go through
        core.files (after the transaction commits, when nothing refers to the file any more)."""

    async def close(self) -> None:  # noqa: B027  (optional: only S3Storage holds a client)
        """Release what the storage holds (connections)."""


def _create_private(path: Path) -> IO[bytes]:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(descriptor, "wb")


def _flush_to_disk(file: IO[bytes]) -> None:
    file.flush()
    os.fsync(file.fileno())


async def read_chunks(file: IO[bytes], chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
    """A local file's bytes, read off the event loop; the file is closed at the end (or on aclose)."""
    try:
        while chunk := await anyio.to_thread.run_sync(file.read, chunk_size):
            yield chunk
    finally:
        file.close()


class LocalDiskStorage(FileStorage):
    """Files under `root`: `root/<key>`, staged in `root/.staging` (the same file system, so that the
    link into place is atomic). Directories are made 0700 and files 0600: only the service reads them."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._prepare_staging(self.root / ".staging")

    def path_of(self, key: str) -> Path:
        return self.root / check_key(key)

    async def commit(self, staged: StagedFile, *, namespace: str | None = None) -> StoredFile:
        key = content_key(staged.sha256, namespace)
        created = await anyio.to_thread.run_sync(self._link_into_place, staged, self.path_of(key))
        return StoredFile(key=key, sha256=staged.sha256, size=staged.size, created=created)

    @staticmethod
    def _link_into_place(staged: StagedFile, target: Path) -> bool:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            # A hard link never replaces a file: the first of two identical uploads wins, the second
            # finds the same bytes in place.
            os.link(staged.path, target)
        except FileExistsError:
            if target.stat().st_size == staged.size:
                return False
            # Not the bytes its name says (a disk fault, a hand edit): replaced whole, at once.
            logger.warning("stored file %s had the wrong size; replaced with the new upload", target)
            os.replace(staged.path, target)
        _sync_directory(target.parent)
        return True

    async def open(self, key: str) -> Download:
        path = self.path_of(key)
        try:
            file = await anyio.to_thread.run_sync(partial(open, path, "rb"))
        except FileNotFoundError:
            raise FileMissing(key) from None
        size = os.fstat(file.fileno()).st_size
        return Download(size=size, chunks=read_chunks(file))

    async def exists(self, key: str) -> bool:
        return await anyio.to_thread.run_sync(self.path_of(key).is_file)

    async def delete(self, key: str) -> None:
        await anyio.to_thread.run_sync(partial(self.path_of(key).unlink, missing_ok=True))


def _sync_directory(path: Path) -> None:
    """fsync a directory, so that a new name in it survives a power cut (POSIX; a no-op elsewhere)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def open_storage(settings: Settings) -> FileStorage:
    """The storage the settings choose. boto3 is imported only when it is S3 (it costs the API's start
    ~0.1 s and some memory that a local installation has no use for)."""
    if settings.file_storage == "s3":
        from mobility.core.s3storage import S3Storage

        return S3Storage(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region,
            prefix=settings.s3_prefix,
            addressing_style=settings.s3_addressing_style,
            access_key_id=settings.s3_access_key_id or None,
            secret_access_key=(
                settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
            ),
            staging_dir=settings.data_dir / "staging",
        )
    return LocalDiskStorage(settings.effective_files_dir)
