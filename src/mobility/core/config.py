"""Settings, read once from the environment (prefix ``MOBILITY_``) and an optional ``.env`` file."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOBILITY_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    # Empty means the embedded SQLite file under data_dir.
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    # How long a migration waits for a lock before failing cleanly (PostgreSQL); a migration that
    # times out can simply be retried instead of queueing every other query behind it.
    migration_lock_timeout: str = "5s"
    backup_dir: Path | None = None
    # Seeded admin; the password is generated and printed once when not given.
    admin_email: str = "admin@wti.example"
    admin_password: str | None = Field(default=None, repr=False)
    sql_echo: bool = False

    @field_validator("database_url")
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

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'mobility.db').resolve()}"

    @property
    def effective_backup_dir(self) -> Path:
        return self.backup_dir or self.data_dir / "backups"


@lru_cache
def get_settings() -> Settings:
    return Settings()
