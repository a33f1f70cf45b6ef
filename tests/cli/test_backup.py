"""`mobility db downgrade / backup / restore`: destructive commands ask first, back up first, and a
backup brings the database back exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobility.ops import migrations
from mobility.ops.legacy_schema import LEGACY_TABLES
from tests.cli.support import Cli, assert_ok, assert_one_line_error

COUNTED = ("tenants", "roles", "users", "candidates", "placements", "payments", "audit_logs")


def _counts(cli: Cli) -> dict[str, int]:
    return {table: cli.query(f"SELECT COUNT(*) FROM {table}")[0][0] for table in COUNTED}


def _written(output: str) -> Path:
    """The file named by the one "backup ... written to FILE" line of the output."""
    [line] = [line for line in output.splitlines() if line.startswith("backup") and " written to " in line]
    return Path(line.split(" written to ", 1)[1])


def _interactive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mobility.cli._stdin_is_tty", lambda: True)


def test_downgrade_refuses_without_confirmation(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_ok(cli("db", "upgrade"))
    head = migrations.head_revision()

    assert_one_line_error(cli("db", "downgrade", "--to", "0000"), "downgrade refused", "--yes")
    _interactive(monkeypatch)
    refused = cli("db", "downgrade", "--to", "0000", input="n\n")
    assert_one_line_error(refused, "downgrade refused: not confirmed")
    assert "reverting" in refused.stdout and "a backup is taken first" in refused.stdout

    assert cli.revision() == head
    assert cli.backups() == []


def test_downgrade_backs_up_first_and_restore_brings_everything_back(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = migrations.head_revision()
    assert_ok(cli("db", "upgrade"))
    assert_ok(cli("seed", admin_password="restore me please"))
    counts = _counts(cli)
    [(password_hash,)] = cli.query("SELECT \"passwordHash\" FROM users WHERE email = 'admin@wti.example'")

    downgraded = assert_ok(cli("db", "downgrade", "--to", "0003", "--yes"))
    backup = _written(downgraded.stdout)
    assert backup.parent == cli.backup_dir.resolve() and backup.is_file()
    assert f"rev-{head}" in backup.name and "before-downgrade" in backup.name
    assert downgraded.stdout.index("backup written to") < downgraded.stdout.index("Running downgrade")
    assert cli.revision() == "0003"
    assert "candidates" not in cli.tables()

    _interactive(monkeypatch)  # this time confirmed at the prompt instead of --yes
    restored = assert_ok(cli("db", "restore", str(backup), input="y\n"))
    safety = _written(restored.stdout)
    assert "rev-0003" in safety.name and "before-restore" in safety.name and safety.is_file()
    assert f"now at revision {head}" in restored.stdout
    assert cli.revision() == head
    assert _counts(cli) == counts
    assert cli.query("SELECT \"passwordHash\" FROM users WHERE email = 'admin@wti.example'") == [
        (password_hash,)
    ]


def test_restoring_an_older_backup_removes_what_came_after_it(cli: Cli) -> None:
    assert_ok(cli("db", "upgrade", "--to", "0000"))
    cli.execute(
        """INSERT INTO roles (id, name, "updatedAt") VALUES ('0123456789abcdef0123456789abcdef', 'Old', CURRENT_TIMESTAMP)"""
    )
    target = cli.data_dir / "at-baseline.bak"
    made = assert_ok(cli("db", "backup", "--output", str(target)))
    assert "at revision 0000" in made.stdout and target.is_file()
    assert_one_line_error(cli("db", "backup", "--output", str(target)), "already exists")

    assert_ok(cli("db", "upgrade"))
    assert_ok(cli("seed"))
    assert_ok(cli("db", "restore", str(target), "--yes"))

    assert cli.revision() == "0000"
    assert cli.tables() == {*LEGACY_TABLES, "alembic_version"}
    assert [row[0] for row in cli.query("SELECT name FROM roles")] == ["Old"]
    if cli.backend == "postgresql":  # the enum types of the later revisions are gone too
        assert cli.query("SELECT COUNT(*) FROM pg_type WHERE typtype = 'e'") == [(0,)]


def test_a_failed_backup_stops_the_downgrade(cli: Cli, tmp_path: Path) -> None:
    assert_ok(cli("db", "upgrade"))
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    failed = cli("db", "downgrade", "--to", "0000", "--yes", backup_dir=str(blocker / "backups"))
    assert_one_line_error(failed, "cannot create the backup directory")
    assert cli.revision() == migrations.head_revision()


def test_restore_refuses_missing_foreign_and_unconfirmed_files(cli: Cli, tmp_path: Path) -> None:
    assert_ok(cli("db", "upgrade", "--to", "0001"))
    assert_one_line_error(cli("db", "restore", str(tmp_path / "nope.dump"), "--yes"), "does not exist")
    junk = tmp_path / "junk.dump"
    junk.write_text("not a backup\n")
    assert_one_line_error(cli("db", "restore", str(junk), "--yes"), "junk.dump is not")

    backup = _written(assert_ok(cli("db", "backup")).stdout)
    assert_ok(cli("db", "upgrade", "--to", "0002"))
    assert_one_line_error(cli("db", "restore", str(backup)), "restore refused", "--yes")
    assert cli.revision() == "0002"
    assert cli.backups() == [backup]
