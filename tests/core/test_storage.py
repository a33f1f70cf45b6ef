"""The file storage contract (core/storage.py), run on both implementations: a directory on this disk,
and a bucket of a real S3-compatible server process (moto's server mode, tests/support/s3.py).

The expected answers come from the contract as the module doc states it: a file's key is its content's
sha256 (under an optional namespace), never a name; storing is all or nothing (a stream that fails or is
cancelled half-way leaves no object and no staged file); a missing file is FileMissing when opened;
deleting is idempotent; a key that is not a storage key is refused before anything is touched."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mobility.core.config import Settings
from mobility.core.s3storage import S3Storage
from mobility.core.storage import (
    CHUNK_SIZE,
    FileMissing,
    FileStorage,
    InvalidKey,
    LocalDiskStorage,
    content_key,
    open_storage,
)
from tests.support.s3 import S3Server
from tests.support.storage import chunks_of, stored_names


@pytest.fixture
def storage(file_storage: FileStorage) -> FileStorage:
    """Each implementation in turn (the root conftest's `file_storage`: local disk, the S3 server)."""
    return file_storage


async def read_all(storage: FileStorage, key: str) -> bytes:
    download = await storage.open(key)
    parts = [chunk async for chunk in download.chunks]
    assert all(len(part) <= CHUNK_SIZE for part in parts)
    data = b"".join(parts)
    assert len(data) == download.size
    return data


async def test_a_file_is_stored_under_its_content_hash(storage: FileStorage) -> None:
    data = secrets.token_bytes(200_000)
    stored = await storage.put(chunks_of(data, 7000))

    sha256 = hashlib.sha256(data).hexdigest()
    assert (stored.sha256, stored.size, stored.created) == (sha256, len(data), True)
    assert stored.key == f"sha256/{sha256[:2]}/{sha256}"
    assert await storage.exists(stored.key)
    assert await read_all(storage, stored.key) == data
    assert stored_names(storage) == {stored.key}


async def test_the_same_bytes_are_one_file(storage: FileStorage) -> None:
    data = b"%PDF-1.7 the same scan twice"
    first = await storage.put(chunks_of(data, 5))
    second = await storage.put(chunks_of(data, 3))

    assert first.key == second.key
    assert (first.created, second.created) == (True, False)
    assert stored_names(storage) == {first.key}


async def test_a_namespace_keeps_the_same_bytes_apart(storage: FileStorage) -> None:
    data = b"one passport scan, uploaded in two tenants"
    one = await storage.put(chunks_of(data), namespace="0190f0a2-1111-7000-8000-000000000001")
    two = await storage.put(chunks_of(data), namespace="0190f0a2-2222-7000-8000-000000000002")

    assert one.key.startswith("0190f0a2-1111-7000-8000-000000000001/sha256/")
    assert one.key != two.key and one.sha256 == two.sha256 and two.created
    await storage.delete(one.key)
    assert not await storage.exists(one.key)
    assert await read_all(storage, two.key) == data


@pytest.mark.parametrize("namespace", ["../etc", "Tenant", "a/b", "", ".", "x" * 65, "-a"])
async def test_a_namespace_that_is_not_one_path_segment_is_refused(
    storage: FileStorage, namespace: str
) -> None:
    if namespace == "":
        # No namespace at all is allowed: the key is the bare content key.
        stored = await storage.put(chunks_of(b"bare"), namespace=namespace or None)
        assert stored.key.startswith("sha256/")
        return
    with pytest.raises(InvalidKey):
        await storage.put(chunks_of(b"anything"), namespace=namespace)
    assert stored_names(storage) == set()


async def test_delete_removes_and_is_idempotent(storage: FileStorage) -> None:
    stored = await storage.put(chunks_of(b"to be removed"))
    await storage.delete(stored.key)

    assert not await storage.exists(stored.key)
    with pytest.raises(FileMissing):
        await storage.open(stored.key)
    await storage.delete(stored.key)  # again: no error
    assert stored_names(storage) == set()


async def test_a_missing_file_is_refused_when_opened(storage: FileStorage) -> None:
    key = content_key(hashlib.sha256(b"never stored").hexdigest())
    assert not await storage.exists(key)
    with pytest.raises(FileMissing):
        await storage.open(key)  # before any byte is read: an answer can still be chosen


BAD_KEYS = [
    "../../etc/passwd",
    "/etc/passwd",
    "sha256/ab/../../../etc/passwd",
    "sha256/ab/" + "0" * 64,  # the directory does not match the hash
    "sha256/00/" + "0" * 63,  # too short
    "SHA256/00/" + "0" * 64,
    "tenant/../sha256/00/" + "0" * 64,
    "passport.pdf",
    "",
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_a_key_that_is_not_a_storage_key_is_refused(storage: FileStorage, key: str) -> None:
    for operation in (storage.open, storage.exists, storage.delete):
        with pytest.raises(InvalidKey):
            await operation(key)


class Interrupted(Exception):
    pass


async def test_an_upload_interrupted_half_way_leaves_nothing(storage: FileStorage) -> None:
    async def cut_off() -> AsyncIterator[bytes]:
        yield b"%PDF-1.7\n" + secrets.token_bytes(100_000)
        yield secrets.token_bytes(100_000)
        raise Interrupted("the client went away")

    with pytest.raises(Interrupted):
        await storage.put(cut_off())
    assert stored_names(storage) == set()


async def test_an_upload_cancelled_half_way_leaves_nothing(storage: FileStorage) -> None:
    started = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield secrets.token_bytes(50_000)
        started.set()
        await asyncio.sleep(3600)
        yield b"never"

    task = asyncio.create_task(storage.put(stalls()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stored_names(storage) == set()


async def test_a_large_file_streams_both_ways(storage: FileStorage) -> None:
    data = secrets.token_bytes(3 * 1024 * 1024 + 17)
    stored = await storage.put(chunks_of(data, 100_003))
    assert stored.size == len(data)
    assert await read_all(storage, stored.key) == data


async def test_an_empty_file_is_stored_as_such(storage: FileStorage) -> None:
    # The storage judges no content (core/uploads.py refuses empty uploads): 0 bytes are 0 bytes.
    stored = await storage.put(chunks_of(b""))
    assert (stored.size, stored.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert await read_all(storage, stored.key) == b""


async def test_a_download_closed_early_releases_the_file(storage: FileStorage) -> None:
    data = secrets.token_bytes(5 * CHUNK_SIZE)
    stored = await storage.put(chunks_of(data, CHUNK_SIZE))
    download = await storage.open(stored.key)
    first = await anext(download.chunks)
    await download.chunks.aclose()
    assert first == data[: len(first)]
    await storage.delete(stored.key)
    assert not await storage.exists(stored.key)


# --- the local disk -----------------------------------------------------------------------------------


async def test_local_files_are_private_to_the_service(tmp_path: Path) -> None:
    storage = LocalDiskStorage(tmp_path / "files")
    stored = await storage.put(chunks_of(b"personal data"))
    path = storage.path_of(stored.key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(storage.staging_dir.stat().st_mode) == 0o700


async def test_local_a_damaged_file_is_replaced_by_a_new_upload(tmp_path: Path) -> None:
    storage = LocalDiskStorage(tmp_path / "files")
    data = b"the real bytes of the scan"
    key = content_key(hashlib.sha256(data).hexdigest())
    storage.path_of(key).parent.mkdir(parents=True)
    storage.path_of(key).write_bytes(b"truncated")
    stored = await storage.put(chunks_of(data))
    assert stored.created
    assert storage.path_of(key).read_bytes() == data


def test_local_stale_staged_files_are_removed_when_opened(tmp_path: Path) -> None:
    staging = tmp_path / "files" / ".staging"
    staging.mkdir(parents=True)
    stale, fresh = staging / "old.part", staging / "new.part"
    stale.write_bytes(b"left by a process that died")
    fresh.write_bytes(b"an upload in progress in another process")
    day_ago = time.time() - LocalDiskStorage.STALE_STAGING_SECONDS - 60
    os.utime(stale, (day_ago, day_ago))
    LocalDiskStorage(tmp_path / "files")
    assert not stale.exists() and fresh.exists()


# --- configuration ------------------------------------------------------------------------------------


async def test_settings_choose_the_storage(tmp_path: Path, s3_server: S3Server, monkeypatch) -> None:
    local = open_storage(Settings(data_dir=tmp_path))
    assert isinstance(local, LocalDiskStorage) and local.root == (tmp_path / "files").resolve()

    monkeypatch.setenv("MOBILITY_S3_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    settings = Settings(
        data_dir=tmp_path,
        file_storage="s3",
        s3_bucket=s3_server.bucket,
        s3_endpoint_url=s3_server.endpoint_url,
        s3_addressing_style="path",
        s3_access_key_id=s3_server.access_key_id,
        s3_prefix="configured",
    )
    assert s3_server.secret_access_key not in repr(settings)
    remote = open_storage(settings)
    try:
        assert isinstance(remote, S3Storage) and remote.prefix == "configured/"
        stored = await remote.put(chunks_of(b"through the settings"))
        assert await read_all(remote, stored.key) == b"through the settings"
        await remote.delete(stored.key)
    finally:
        await remote.close()


def test_s3_storage_needs_a_bucket() -> None:
    with pytest.raises(ValueError, match="MOBILITY_S3_BUCKET"):
        Settings(file_storage="s3")


# A fresh interpreter: the test process has loaded boto3 long ago (tests/support/s3.py).
SERVE_AND_LIST = """
import asyncio, json, sys
import httpx
from mobility.core.config import Settings
from mobility.main import create_app

async def main():
    settings = Settings.model_validate_json(sys.argv[1])
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            await client.get("/health")
        kind = type(app.state.storage).__name__
    print(json.dumps({"storage": kind, "boto3": "boto3" in sys.modules, "pillow": "PIL" in sys.modules}))

asyncio.run(main())
"""


def loaded_by_the_app(settings: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", SERVE_AND_LIST, json.dumps(settings)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_the_api_loads_no_s3_client_unless_configured(tmp_path: Path, s3_server: S3Server) -> None:
    base = {"database_url": f"sqlite:///{tmp_path}/api.db", "data_dir": str(tmp_path)}
    assert loaded_by_the_app(base) == {"storage": "LocalDiskStorage", "boto3": False, "pillow": False}
    s3 = {
        **base,
        "file_storage": "s3",
        "s3_bucket": s3_server.bucket,
        "s3_endpoint_url": s3_server.endpoint_url,
        "s3_access_key_id": s3_server.access_key_id,
        "s3_secret_access_key": s3_server.secret_access_key,
    }
    # The check can see boto3 when it is there.
    assert loaded_by_the_app(s3) == {"storage": "S3Storage", "boto3": True, "pillow": False}


@pytest.mark.parametrize("namespace", ["../etc", "Tenant", "a/b", ".", "x" * 65, "-a", "a\x00"])
def test_content_key_refuses_a_namespace_that_is_not_one_path_segment(namespace: str) -> None:
    sha256 = hashlib.sha256(b"x").hexdigest()
    with pytest.raises(InvalidKey):
        content_key(sha256, namespace)
    assert content_key(sha256, "0190f0a2-1111-7000-8000-000000000001").count("/") == 3
