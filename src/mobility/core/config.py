"""Settings, read once from the environment (prefix ``MOBILITY_``) and an optional ``.env`` file."""

from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Room for the form fields around an uploaded file in a multipart body (type, number, dates, boundaries).
UPLOAD_FORM_ALLOWANCE = 64 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOBILITY_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    # Empty means the embedded SQLite file under data_dir.
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1)
    # Addresses of the reverse proxies whose X-Forwarded-For / -Proto headers `mobility serve` believes
    # (comma-separated, "*" for any). Behind a proxy that is not listed, every client has the proxy's
    # address: one address throttle for everybody, and the proxy's address in every log.
    forwarded_allow_ips: str = "127.0.0.1"
    # How long a migration waits for a lock before failing cleanly (PostgreSQL); a migration that
    # times out can simply be retried instead of queueing every other query behind it.
    migration_lock_timeout: str = "5s"
    backup_dir: Path | None = None
    # Seeded admin; the password is generated and printed once when not given.
    admin_email: str = "admin@wti.example"
    admin_password: str | None = Field(default=None, repr=False)
    sql_echo: bool = False

    # Sessions: an opaque bearer token (or HttpOnly cookie) that ends after this much inactivity, and
    # at the latest this long after login.
    session_idle_timeout_minutes: int = Field(default=30, ge=1)
    session_absolute_timeout_hours: int = Field(default=12, ge=1)
    session_cookie_name: str = "mobility_session"
    # Only ever off for plain-HTTP local development.
    session_cookie_secure: bool = True
    # Login throttling: after `login_free_failures` failures in a row an account waits 1 s, then twice
    # as long after each further failure, up to `login_max_lockout_seconds` (short, so an attacker
    # cannot keep a real user out for long). A client address gets more tries across accounts.
    login_free_failures: int = Field(default=5, ge=1)
    login_free_failures_per_address: int = Field(default=20, ge=1)
    login_max_lockout_seconds: int = Field(default=300, ge=1)
    # The second database role, the one the API connects as on PostgreSQL: it owns no table, and
    # row-level security applies to it. Migrations run as the owner (database_url's user).
    app_database_url: str = ""
    # PostgreSQL: connections of the API's read path (core/db.py) per API process, beside the ORM's
    # pool (5 + 10). Few on purpose: its statements take well under a millisecond, and more backends
    # than cores only share the CPU. bench/auth.py, 2 cores, 2 processes: 4 each served ~15 % more
    # requests than 10 each, with a third less PostgreSQL CPU per request.
    read_pool_size: int = Field(default=4, ge=1)
    # PostgreSQL: seconds a new connection may take. While the database is unreachable each request
    # is answered 503 within this (core/db.py), instead of waiting for asyncpg's 60 s.
    database_connect_timeout: float = Field(default=5, gt=0)
    # PostgreSQL: how tolerant the candidates' name search is, the trigram word similarity (0..1) a
    # name must reach (pg_trgm's `%>`). Every connection starts with it (core/db.server_settings):
    # 0.45 finds "Tupuo" for Tupou (0.5), which pg_trgm's own default 0.6 missed.
    name_search_similarity: float = Field(default=0.45, gt=0, le=1)

    # HTTP limits (core/http.py). Request bodies: JSON (and forms) up to 1 MiB, far above any request
    # of the API; uploads (multipart/form-data) up to max_file_bytes of file plus the form around it
    # (by default; see _consistent_limits).
    max_json_body_bytes: int = Field(default=1024 * 1024, ge=1)
    max_upload_bytes: int = Field(default=10 * 1024 * 1024 + UPLOAD_FORM_ALLOWANCE, ge=1)
    # Slow or idle clients (`mobility serve`): an idle connection (a new one that sends nothing, or
    # one between requests) is closed after keep_alive_timeout_seconds; a request's headers must be in
    # within header_timeout_seconds of its first byte, its body within body_timeout_seconds after the
    # headers (else 408). Past max_connections open connections (or requests in progress) a process
    # answers 503; keep it below the process's file-descriptor limit (ulimit -n).
    keep_alive_timeout_seconds: int = Field(default=5, ge=1)
    header_timeout_seconds: float = Field(default=10, gt=0)
    body_timeout_seconds: float = Field(default=30, gt=0)
    max_connections: int = Field(default=1000, ge=1)

    # Links in e-mails (invitations, password resets) point here: the address users open the app at.
    public_url: str = "http://127.0.0.1:8000"
    # E-mail (the worker, notifications/email.py). No host: messages are written as .eml files under
    # data_dir/mail instead (development, `make run`), never lost.
    smtp_host: str = ""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    # "starttls": upgrade a plain connection (port 587); "tls": TLS from the start (port 465).
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str | None = None
    smtp_password: str | None = Field(default=None, repr=False)
    smtp_timeout_seconds: float = Field(default=30, gt=0)
    mail_from: str = "no-reply@localhost"
    # Delivery (notifications and webhooks): attempts, then the dead state (`failed`, with the last
    # error). Between attempts: base * 2^(n-1) seconds, at most retry_max, with jitter (half to all).
    notify_max_attempts: int = Field(default=8, ge=1)
    notify_retry_base_seconds: float = Field(default=30, ge=0)
    notify_retry_max_seconds: float = Field(default=6 * 3600, ge=0)
    # A worker's claim on a message: not finished within this, another worker takes it again.
    worker_lease_seconds: float = Field(default=300, gt=0)
    worker_batch_size: int = Field(default=50, ge=1, le=1000)
    worker_poll_seconds: float = Field(default=2, gt=0)
    # Webhooks: one delivery's time limit; addresses in private, loopback and link-local ranges are
    # refused unless allowed (on-premises installations); an endpoint failing this long is disabled.
    webhook_timeout_seconds: float = Field(default=10, gt=0)
    webhook_allow_private_addresses: bool = False
    webhook_disable_after_days: float = Field(default=3, gt=0)
    # Secrets stored in the database that must be read back (webhook signing secrets) are encrypted
    # with this Fernet key (core/crypto.py). Unset: the embedded default generates one into
    # data_dir/secret.key; a configured database_url needs it set, the same on every host. Earlier keys,
    # comma-separated, still decrypt (a key rotation) and are never used to encrypt.
    secret_key: str | None = Field(default=None, repr=False)
    previous_secret_keys: str | None = Field(default=None, repr=False)
    # Forgotten passwords: how long a reset link works (once).
    password_reset_minutes: int = Field(default=30, ge=5, le=24 * 60)

    # Stored files (core/storage.py): "local" keeps them under files_dir (default data_dir/files), for
    # one API host; "s3" in a bucket of an S3-compatible object store, which several API hosts share.
    # Either way a file's key is its content's sha256, never a name a client gave.
    file_storage: Literal["local", "s3"] = "local"
    files_dir: Path | None = None
    # S3-compatible store: the bucket (which must exist), its endpoint (empty: AWS itself), region,
    # a key prefix, and the addressing style ("path" for most self-hosted stores). Without an access
    # key, boto3's own chain applies (AWS_* variables, a profile, an instance role).
    s3_bucket: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_prefix: str = ""
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    s3_access_key_id: str = ""
    s3_secret_access_key: SecretStr | None = Field(default=None, repr=False)
    # Uploaded files (core/uploads.py): the largest file (413 past it, counted as it streams in), and
    # the most pixels an image may claim in its header (a decompression bomb: a few KiB that decode to
    # gigabytes). 80 MP is above a phone camera's default output (12-50 MP) and a 600 dpi A3 scan
    # (70 MP), and below Pillow's own warning (89 MP).
    max_file_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(default=80_000_000, ge=1)

    @field_validator("database_url", "app_database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        # Accept the URLs people usually have at hand and pick the async driver we ship.
        for plain, driver in (
            ("postgres://", "postgresql+asyncpg://"),
            ("postgresql://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if url.startswith(plain):
                return driver + url[len(plain) :]
        return url

    @model_validator(mode="after")
    def _consistent_limits(self) -> Self:
        # The multipart body carries the file and a form around it: unless set, it follows the file cap.
        if "max_upload_bytes" not in self.model_fields_set:
            self.max_upload_bytes = self.max_file_bytes + UPLOAD_FORM_ALLOWANCE
        elif self.max_upload_bytes <= self.max_file_bytes:
            raise ValueError(
                "MOBILITY_MAX_UPLOAD_BYTES (the whole multipart body) must be larger than "
                "MOBILITY_MAX_FILE_BYTES (the file in it); leave it unset to follow the file cap"
            )
        if self.file_storage == "s3" and not self.s3_bucket:
            raise ValueError("MOBILITY_FILE_STORAGE=s3 needs MOBILITY_S3_BUCKET")
        return self

    @property
    def effective_files_dir(self) -> Path:
        return self.files_dir or self.data_dir / "files"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'mobility.db').resolve()}"

    @property
    def effective_app_database_url(self) -> str:
        """What the API connects as: the app role when configured, else the owner (database_url)."""
        return self.app_database_url or self.effective_database_url

    @property
    def effective_backup_dir(self) -> Path:
        return self.backup_dir or self.data_dir / "backups"


@lru_cache
def get_settings() -> Settings:
    return Settings()
