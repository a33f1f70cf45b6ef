"""`python -m mobility.ops.distribution`: the Citus statements, in an order Citus accepts.

Citus refuses to make a table a Citus table while one of its foreign keys points at a table it does not
manage yet ("referenced table ... must be a distributed table or a reference table"), and a local
table may join its metadata only when it has foreign keys with reference tables. Checked against the
foreign keys of the migrated catalogue, not the models'.
"""

from __future__ import annotations

import re
import subprocess
import sys

import psycopg
import pytest

from mobility.distribution import TABLES, Placement, tables_of
from mobility.models import metadata
from mobility.ops import distribution
from tests.support.databases import libpq_url

pytestmark = pytest.mark.postgres_only

CALL = re.compile(
    r"^SELECT (create_reference_table|citus_add_local_table_to_metadata|create_distributed_table)"
    r"\('(\w+)'(?:, '(\w+)')?(?:, colocate_with => '(\w+)')?\);$"
)


def _foreign_keys(url: str) -> set[tuple[str, str]]:
    with psycopg.connect(libpq_url(url)) as connection:
        rows = connection.execute(
            """
            SELECT child.relname, parent.relname FROM pg_constraint con
              JOIN pg_class child ON child.oid = con.conrelid JOIN pg_class parent ON parent.oid = con.confrelid
             WHERE con.contype = 'f' AND con.connamespace = 'public'::regnamespace
            """
        ).fetchall()
    return {(child, parent) for child, parent in rows}


def test_every_table_is_made_a_citus_table_after_what_it_refers_to(migrated_database_url: str) -> None:
    calls = [CALL.match(line) for line in distribution.statements(metadata)]
    assert all(calls), distribution.statements(metadata)
    order = [call.group(2) for call in calls]
    assert len(order) == len(set(order)), "a table twice"
    kinds = {call.group(2): call.group(1) for call in calls}
    assert {t for t, kind in kinds.items() if kind == "create_reference_table"} == set(
        tables_of(Placement.REFERENCE)
    )
    assert {t for t, kind in kinds.items() if kind == "create_distributed_table"} == set(
        tables_of(Placement.DISTRIBUTED)
    )
    foreign_keys = _foreign_keys(migrated_database_url)
    for child, parent in foreign_keys:
        if child == parent or child not in kinds:
            continue
        assert parent in kinds and order.index(parent) < order.index(child), f"{child} -> {parent}"
    # Local tables join Citus's metadata exactly when they have a foreign key with a reference table.
    reference = set(tables_of(Placement.REFERENCE))
    linked = {
        table
        for table in tables_of(Placement.LOCAL)
        if any((table, other) in foreign_keys or (other, table) in foreign_keys for other in reference)
    }
    assert {t for t, kind in kinds.items() if kind == "citus_add_local_table_to_metadata"} == linked
    assert "sessions" in linked and "login_throttles" not in linked


def test_distributed_tables_are_co_located_by_the_tenant() -> None:
    calls = [CALL.match(line) for line in distribution.statements(metadata)]
    distributed = [call for call in calls if call.group(1) == "create_distributed_table"]
    first, *others = distributed
    assert first.group(3) == "tenantId" and first.group(4) is None
    assert all(c.group(3) == "tenantId" and c.group(4) == first.group(2) for c in others)


def test_the_command_prints_the_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mobility.ops.distribution"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout == distribution.script()
    assert "SET citus.enable_unsafe_triggers = on;" in result.stdout
    assert all(TABLES[name].placement is Placement.LOCAL for name in ("sessions", "activity_logs"))
