"""Running the Alembic revisions from code (CLI, tests, benchmarks) with the project's configuration."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from mobility.core.config import get_settings

PROJECT_ROOT = Path(__file__).resolve().parents[3]
ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


def alembic_config(database_url: str | None = None, *, quiet: bool = True) -> Config:
    """Alembic's configuration for `database_url` (default: the configured database)."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # `%` would be read as interpolation by configparser.
    config.set_main_option(
        "sqlalchemy.url", (database_url or get_settings().effective_database_url).replace("%", "%%")
    )
    config.attributes["configure_logging"] = not quiet
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str | None, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)
