"""Stored files in a bucket of an S3-compatible object store (AWS S3, MinIO, Ceph, Garage, R2, ...).

Chosen with `MOBILITY_FILE_STORAGE=s3` (core/config.py); imported only then (core/storage.py).

The client is boto3, the AWS SDK itself, with each call run in a worker thread (anyio.to_thread) so the
event loop never waits on the network. Chosen over aiobotocore: aiobotocore pins one exact botocore
release (every upgrade of either waits for the other) and brings aiohttp as a second HTTP stack; the API
makes few S3 calls (a HEAD and a PUT per upload, a GET per download, a DELETE now and then), so a thread
per call costs nothing that matters. A boto3 client is thread-safe; one is made per storage.

Uploads are staged on local disk first (core/storage.py): the key is the content's sha256, known only
once the last byte is in, and PutObject shows an object only once it is complete, so an upload cut off
half-way never leaves an object behind. Files are capped at MOBILITY_MAX_FILE_BYTES (10 MiB), far under
PutObject's 5 GiB, so one PUT is enough and no multipart upload can be left half-done.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio.to_thread
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from mobility.core.storage import (
    CHUNK_SIZE,
    Download,
    FileMissing,
    FileStorage,
    StagedFile,
    StoredFile,
    check_key,
    content_key,
)

_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


class S3Storage(FileStorage):
    def __init__(
        self,
        *,
        bucket: str,
        staging_dir: Path,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        prefix: str = "",
        addressing_style: str = "auto",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.bucket = bucket
        self.prefix = prefix
        self._prepare_staging(staging_dir)
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(
                s3={"addressing_style": addressing_style},
                # Fail a request to an unreachable store in seconds, not minutes; a few retries for the
                # throttling and 5xx answers S3 gives now and then.
                connect_timeout=5,
                read_timeout=30,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )

    def object_key(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def _call(self, method: str, **kwargs: Any) -> Any:
        return await anyio.to_thread.run_sync(
            partial(getattr(self.client, method), Bucket=self.bucket, **kwargs)
        )

    async def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return await self._call("head_object", Key=self.object_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise

    async def commit(self, staged: StagedFile, *, namespace: str | None = None) -> StoredFile:
        key = content_key(staged.sha256, namespace)
        existing = await self._head(key)
        if existing is not None and existing.get("ContentLength") == staged.size:
            return StoredFile(key=key, sha256=staged.sha256, size=staged.size, created=False)
        await anyio.to_thread.run_sync(self._put_file, key, staged)
        return StoredFile(key=key, sha256=staged.sha256, size=staged.size, created=True)

    def _put_file(self, key: str, staged: StagedFile) -> None:
        with open(staged.path, "rb") as body:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.object_key(key),
                Body=body,
                ContentLength=staged.size,
                # What the bytes are is the row's business (core/uploads.py): the store serves nobody.
                ContentType="application/octet-stream",
                Metadata={"sha256": staged.sha256},
            )

    async def open(self, key: str) -> Download:
        try:
            answer = await self._call("get_object", Key=self.object_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                raise FileMissing(key) from None
            raise
        return Download(size=answer["ContentLength"], chunks=_read_body(answer["Body"]))

    async def exists(self, key: str) -> bool:
        return await self._head(key) is not None

    async def delete(self, key: str) -> None:
        # S3 answers 204 whether or not the object was there.
        await self._call("delete_object", Key=self.object_key(key))

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self.client.close)


async def _read_body(body: Any) -> AsyncIterator[bytes]:
    try:
        while chunk := await anyio.to_thread.run_sync(body.read, CHUNK_SIZE):
            yield chunk
    finally:
        body.close()
