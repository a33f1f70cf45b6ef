"""`mobility db status / upgrade`, and how every failure reads: one `error:` line, exit status 1."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mobility.cli import app
from mobility.ops import migrations
from tests.cli.support import Cli, assert_ok, assert_one_line_error


def _revisions() -> list[str]:
    return [script.revision for script in migrations.ordered_revisions()]


def test_status_upgrade_status(cli: Cli) -> None:
    revisions, head = _revisions(), migrations.head_revision()

    status = assert_ok(cli("db", "status")).stdout
    empty = {"sqlite": "the database file does not exist yet", "postgresql": "empty database"}[cli.backend]
    assert f"current:  none ({empty})" in status
    cli.query("SELECT 1")  # now the SQLite file exists, empty
    assert "current:  none (empty database)" in assert_ok(cli("db", "status")).stdout
    assert f"head:     {head} " in status
    assert f"pending:  {len(revisions)}" in status
    for revision in revisions:
        assert f"\n  {revision}  " in status

    upgraded = assert_ok(cli("db", "upgrade", "--to", "0000")).stdout
    assert "Running upgrade  -> 0000" in upgraded
    assert cli.revision() == "0000"
    status = assert_ok(cli("db", "status")).stdout
    assert "current:  0000 (Legacy baseline" in status
    assert f"pending:  {len(revisions) - 1}" in status
    assert "\n  0000  " not in status and f"\n  {head}  " in status

    assert_ok(cli("db", "upgrade"))
    assert cli.revision() == head
    status = assert_ok(cli("db", "status")).stdout
    assert f"current:  {head} " in status
    assert "pending:  none (up to date)" in status
    assert "already at" in assert_ok(cli("db", "upgrade")).stdout


def test_bad_revisions_are_one_line_and_change_nothing(cli: Cli) -> None:
    assert_one_line_error(cli("db", "upgrade", "--to", "nope"), "unknown revision 'nope'")
    assert cli.tables() == set()
    assert_ok(cli("db", "upgrade", "--to", "0001"))
    assert_one_line_error(cli("db", "downgrade", "--to", "9999", "--yes"), "unknown revision '9999'")
    # Upgrading "down" or downgrading "up" is refused and points at the right command.
    assert_one_line_error(
        cli("db", "upgrade", "--to", "0000"), "below the current revision 0001", "downgrade"
    )
    assert_one_line_error(
        cli("db", "downgrade", "--to", "head", "--yes"), "above the current revision", "upgrade"
    )
    assert cli.revision() == "0001"
    assert cli.backups() == []


def test_a_database_ahead_of_the_code_is_reported(cli: Cli) -> None:
    assert_ok(cli("db", "upgrade", "--to", "0000"))
    cli.execute("UPDATE alembic_version SET version_num = 'ffff'")
    assert_one_line_error(cli("db", "status"), "revision ffff, which this code does not know")
    assert_one_line_error(cli("db", "upgrade"), "revision ffff")


@pytest.mark.parametrize(
    "command",
    [("db", "status"), ("db", "upgrade"), ("db", "adopt"), ("db", "backup"), ("seed",)],
    ids=lambda command: " ".join(command),
)
def test_an_unreachable_database_is_one_line(
    command: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOBILITY_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    monkeypatch.setenv("MOBILITY_BACKUP_DIR", str(tmp_path / "backups"))
    assert_one_line_error(CliRunner().invoke(app, list(command)), "cannot reach the database")
    assert not (tmp_path / "backups").exists()


def test_settings_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOBILITY_DATABASE_URL", "mysql://somewhere/db")
    assert_one_line_error(CliRunner().invoke(app, ["db", "status"]), "unsupported database 'mysql'")
    monkeypatch.setenv("MOBILITY_DATABASE_URL", "sqlite:///" + str(tmp_path / "missing.db"))
    assert_one_line_error(CliRunner().invoke(app, ["db", "backup"]), "does not exist")
    assert not (tmp_path / "missing.db").exists()


def test_purge_throttles_deletes_the_counters_that_no_longer_count(cli: Cli) -> None:
    assert_ok(cli("db", "upgrade"))
    hours_ago = {
        "postgresql": "(now() AT TIME ZONE 'UTC') - interval '{} hours'",
        "sqlite": "datetime('now', '-{} hours')",
    }[cli.backend]
    cli.execute(
        'INSERT INTO login_throttles (key, failures, "lastFailureAt") VALUES '
        f"('account:stale@example.org', 6, {hours_ago.format(3)}), "
        f"('account:fresh@example.org', 6, {hours_ago.format(0)}), "
        "('address:10.0.0.9', 0, NULL)"
    )
    out = assert_ok(cli("db", "purge-throttles")).stdout
    assert "deleted 2 login-throttle counter(s)" in out
    assert [row[0] for row in cli.query("SELECT key FROM login_throttles")] == ["account:fresh@example.org"]
