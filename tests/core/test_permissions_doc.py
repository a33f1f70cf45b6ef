"""docs/permissions.md is the permission matrix, generated, and kept up to date."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mobility.authz.permissions import ALL_PERMISSIONS, MATRIX, SystemRole, render_markdown
from mobility.cli import app
from mobility.ops.migrations import PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "permissions.md"


def test_docs_permissions_is_up_to_date() -> None:
    assert DOC.is_file(), "docs/permissions.md is missing; run `mobility docs permissions`"
    assert DOC.read_text(encoding="utf-8") == render_markdown(), (
        "docs/permissions.md is out of date with src/mobility/authz/permissions.py; "
        "regenerate it with `mobility docs permissions` (check with `mobility docs permissions --check`)"
    )


def test_the_doc_has_one_row_per_permission_and_one_column_per_role() -> None:
    lines = render_markdown().splitlines()
    header = next(line for line in lines if line.startswith("| permission |"))
    assert [cell.strip() for cell in header.strip("|").split("|")][1:] == [role.value for role in SystemRole]
    rows = {line.split("`")[1]: line for line in lines if line.startswith("| `")}
    assert list(rows) == list(ALL_PERMISSIONS)
    for name, line in rows.items():
        cells = [cell.strip() for cell in line.strip("|").split("|")][1:]
        assert cells == ["yes" if name in MATRIX[role] else "" for role in SystemRole], name


def test_command_writes_and_checks(tmp_path: Path) -> None:
    target = tmp_path / "docs" / "permissions.md"
    runner = CliRunner()
    written = runner.invoke(app, ["docs", "permissions", "--output", str(target)])
    assert written.exit_code == 0, written.output
    assert target.read_text(encoding="utf-8") == render_markdown()
    checked = runner.invoke(app, ["docs", "permissions", "--output", str(target), "--check"])
    assert checked.exit_code == 0, checked.output
    assert "up to date" in checked.stdout

    target.write_text(target.read_text(encoding="utf-8").replace("yes", "no", 1), encoding="utf-8")
    stale = runner.invoke(app, ["docs", "permissions", "--output", str(target), "--check"])
    assert stale.exit_code == 1
    assert stale.stderr.startswith("error: ") and "out of date" in stale.stderr
    assert "mobility docs permissions" in stale.stderr

    target.unlink()
    missing = runner.invoke(app, ["docs", "permissions", "--output", str(target), "--check"])
    assert missing.exit_code == 1 and "out of date" in missing.stderr
