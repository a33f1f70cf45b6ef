"""Revision 0020 (webhook signing secrets encrypted at rest) with endpoints stored, on both databases:
the upgrade encrypts each plain-text secret (the previous one after a rotation too) under the
installation's key, the downgrade gives back the very same plain text, and every other value is kept;
without a key to use nothing changes; the SQL scripts refuse rather than leave a secret as it was."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy import Engine

from mobility.core.config import Settings
from mobility.core.crypto import MissingSecretKey, secret_box
from mobility.models import metadata
from mobility.ops import migrations, sqlscripts
from mobility.webhooks import signing
from tests.migrations.support import schema_snapshot, sync_engine
from tests.sqlscripts.support import PsqlError, psql_file

BEFORE, AFTER = "0019", "0020"
ENDPOINTS = metadata.tables["webhook_endpoints"]
UNTIL = datetime(2026, 3, 2, 9, 30, 15, 250000, tzinfo=UTC)


def _fill(connection) -> dict[uuid.UUID, tuple[str, str | None]]:
    """Two tenants' endpoints, one rotated (a previous secret), with their secrets in clear."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL mobility.system = 'on'")
    secrets = {}
    for n in range(2):
        tenant = uuid.uuid4()
        connection.execute(metadata.tables["tenants"].insert().values(id=tenant, name=f"T{n}", code=f"T{n}"))
        for rotated in (False, True):
            endpoint = uuid.uuid4()
            secret, previous = signing.new_secret(), signing.new_secret() if rotated else None
            connection.execute(
                ENDPOINTS.insert().values(
                    id=endpoint,
                    tenantId=tenant,
                    url=f"https://hooks.example.org/{n}",
                    description="Vāka ünïcødé",
                    eventTypes=["candidate.created"],
                    secret=secret,
                    previousSecret=previous,
                    previousSecretUntil=UNTIL if rotated else None,
                )
            )
            secrets[endpoint] = (secret, previous)
    return secrets


def _rows(engine: Engine) -> dict[uuid.UUID, dict]:
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET mobility.system = 'on'")
        return {row.id: dict(row._mapping) for row in connection.execute(sa.select(ENDPOINTS))}


def test_secrets_are_encrypted_by_the_upgrade_and_given_back_by_the_downgrade(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("MOBILITY_SECRET_KEY", key)
    box = secret_box(Settings(secret_key=key, database_url=empty_database_url))
    migrations.upgrade(empty_database_url, BEFORE)
    with sync_engine(empty_database_url, foreign_keys=True) as engine:
        at_before = schema_snapshot(engine)
        with engine.begin() as connection:
            secrets = _fill(connection)
        before = _rows(engine)
        for _ in range(2):
            migrations.upgrade(empty_database_url, AFTER)
            after = _rows(engine)
            assert schema_snapshot(engine) == at_before  # the columns stay as they are
            for endpoint, (secret, previous) in secrets.items():
                row = after[endpoint]
                assert secret not in row["secret"] and not row["secret"].startswith(signing.PREFIX)
                assert box.decrypt(row["secret"]) == secret
                if previous is None:
                    assert row["previousSecret"] is None
                else:
                    assert previous not in row["previousSecret"]
                    assert box.decrypt(row["previousSecret"]) == previous
                unchanged = {k: v for k, v in row.items() if k not in ("secret", "previousSecret")}
                assert unchanged == {
                    k: v for k, v in before[endpoint].items() if k not in ("secret", "previousSecret")
                }
            # Running the upgrade's step again changes nothing: an encrypted value is left as it is.
            migrations.downgrade(empty_database_url, BEFORE)
            assert _rows(engine) == before
            migrations.upgrade(empty_database_url, AFTER)
            migrations.downgrade(empty_database_url, BEFORE)
            assert _rows(engine) == before


def test_without_a_key_to_use_the_upgrade_changes_nothing_unless_there_is_nothing_to_encrypt(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    # A configured database (not the embedded default), no MOBILITY_SECRET_KEY, no key file.
    monkeypatch.delenv("MOBILITY_SECRET_KEY", raising=False)
    monkeypatch.setenv("MOBILITY_DATA_DIR", str(tmp_path))
    # No endpoint stored: nothing to encrypt, no key needed either way.
    migrations.upgrade(empty_database_url, AFTER)
    migrations.downgrade(empty_database_url, BEFORE)
    with sync_engine(empty_database_url, foreign_keys=True) as engine:
        with engine.begin() as connection:
            _fill(connection)
        before = _rows(engine)
        with pytest.raises(MissingSecretKey):
            migrations.upgrade(empty_database_url, AFTER)
        assert _rows(engine) == before
        assert migrations.current_revision(empty_database_url) == BEFORE
    assert not (tmp_path / "secret.key").exists()  # never generated for a configured database


@pytest.mark.postgres_only
def test_the_sql_scripts_of_0020_refuse_to_leave_a_secret_as_it_was(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    [revision] = [r for r in sqlscripts.revisions() if r.revision == AFTER]
    up, down = (sqlscripts.SQL_DIR / f"{revision.stem}.{direction}.sql" for direction in ("up", "down"))
    migrations.upgrade(empty_database_url, BEFORE)
    # No endpoint stored: the scripts go up and down (twice each) like any other.
    for script in (up, up, down, down):
        psql_file(empty_database_url, script)
    with sync_engine(empty_database_url) as engine:
        with engine.begin() as connection:
            _fill(connection)
        before = _rows(engine)
        with pytest.raises(PsqlError, match="mobility db upgrade"):
            psql_file(empty_database_url, up)
        assert _rows(engine) == before
        # Upgraded by the application instead: now the down script refuses, keeping the encrypted values.
        monkeypatch.setenv("MOBILITY_SECRET_KEY", Fernet.generate_key().decode())
        migrations.upgrade(empty_database_url, AFTER)
        encrypted = _rows(engine)
        with pytest.raises(PsqlError, match="mobility db downgrade"):
            psql_file(empty_database_url, down)
        assert _rows(engine) == encrypted
