"""psql, pg_dump and squawk, as the SQL-script tests use them."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import psycopg

from mobility.ops.migrations import PROJECT_ROOT
from tests.support.databases import libpq_url

SQUAWK = Path(os.environ.get("VIRTUAL_ENV", PROJECT_ROOT / ".venv")) / "bin" / "squawk"
SQUAWK_CONFIG = PROJECT_ROOT / ".squawk.toml"
# psql's NOTICEs ("relation ... already exists, skipping") are the point of a second run: keep them out
# of the captured output so that real errors stand out.
_ENV = {**os.environ, "PGOPTIONS": "-c client_min_messages=warning"}


class PsqlError(AssertionError):
    pass


def psql_file(url: str, path: Path) -> None:
    """Runs a script the way the docs tell a DBA to: psql -X -v ON_ERROR_STOP=1 -f FILE."""
    result = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", libpq_url(url), "-f", str(path)],
        capture_output=True,
        text=True,
        env=_ENV,
        timeout=120,
    )
    if result.returncode != 0:
        raise PsqlError(f"psql -f {path.name} failed ({result.returncode}):\n{result.stderr}{result.stdout}")


def execute(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


_NOISE = re.compile(r"^(--.*|SET .*|SELECT pg_catalog\.set_config.*|\\(un)?restrict .*|\s*)$")


def schema(url: str) -> str:
    """The database's schema as pg_dump prints it, without comments and settings, plus alembic_version."""
    result = subprocess.run(
        ["pg_dump", "--schema-only", "--no-owner", "--no-privileges", "-d", libpq_url(url)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = [line for line in result.stdout.splitlines() if not _NOISE.match(line)]
    if execute(url, "SELECT to_regclass('alembic_version') IS NOT NULL")[0][0]:
        versions = [row[0] for row in execute(url, "SELECT version_num FROM alembic_version ORDER BY 1")]
        lines.append(f"-- alembic_version: {versions}")
    else:
        lines.append("-- alembic_version: (no table)")
    return "\n".join(lines) + "\n"


def schema_diff(expected: str, actual: str, expected_name: str, actual_name: str) -> str:
    import difflib

    diff = difflib.unified_diff(
        expected.splitlines(), actual.splitlines(), expected_name, actual_name, lineterm="", n=2
    )
    return "\n".join(diff)


def squawk(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SQUAWK), "--config", str(SQUAWK_CONFIG), "--reporter", "gcc", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
