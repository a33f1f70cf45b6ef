"""A real S3-compatible server for the tests: moto's server mode, run as a process of its own on a free
loopback port, spoken to over HTTP by the same boto3 client the application uses (no mocked client)."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mobility.core.s3storage import S3Storage


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str
    # Any key pair works against moto; made up per run, never a real credential.
    access_key_id: str
    secret_access_key: str
    process: subprocess.Popen

    def storage(self, staging_dir: Path, *, prefix: str = "") -> S3Storage:
        return S3Storage(
            bucket=self.bucket,
            endpoint_url=self.endpoint_url,
            prefix=prefix,
            addressing_style="path",
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            staging_dir=staging_dir,
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


@contextlib.contextmanager
def running_s3_server(log_dir: Path) -> Iterator[S3Server]:
    """Start `python -m moto.server` on a free port, make a bucket, and stop the server at the end."""
    for _attempt in range(3):  # the free port may be taken between the probe and the server's bind
        port = _free_port()
        log = open(log_dir / f"moto-{port}.log", "wb")  # noqa: SIM115  (closed below)
        environment = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline and not _answers(port):
            time.sleep(0.05)
        if process.poll() is None and _answers(port):
            break
        process.kill()
        process.wait()
        log.close()
    else:
        raise RuntimeError(f"moto's S3 server did not start; see {log_dir}")
    server = S3Server(
        endpoint_url=f"http://127.0.0.1:{port}",
        bucket=f"mobility-test-{secrets.token_hex(4)}",
        access_key_id=f"TEST{secrets.token_hex(8).upper()}",
        secret_access_key=secrets.token_urlsafe(30),
        process=process,
    )
    storage = server.storage(log_dir / "staging")
    storage.client.create_bucket(Bucket=server.bucket)
    storage.client.close()
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
