"""Building blocks the Alembic revisions share.

Revisions are frozen: what a function here emits must never change once a revision uses it (a changed
helper would change the schema that old revisions build, and the generated SQL scripts). To emit
something else, add a new function.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from textwrap import dedent

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

NOW = sa.text("CURRENT_TIMESTAMP")


def is_postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def execute(sql: str) -> None:
    """Run SQL written out in the revision (indented triple-quoted text is fine)."""
    op.execute(dedent(sql).strip())


def outside_the_transaction() -> tuple[AbstractContextManager[object], bool]:
    """Commit what came before and run the block in autocommit mode (`COMMIT;` ... `BEGIN;` offline).

    For what must not hold the revision's locks (VALIDATE CONSTRAINT after ADD ... NOT VALID) or cannot
    run in a transaction (CREATE INDEX CONCURRENTLY). Returns the block and whether it really is
    outside a transaction: when the caller runs the migrations inside a transaction of its own
    (pytest-alembic's downgrade-leaves-no-trace test runs each step in a savepoint it rolls back),
    there is no leaving it, and the block runs inside that transaction (correct, only not lock-friendly).
    """
    context = op.get_context()
    if not context.as_sql and context._in_external_transaction:
        return nullcontext(), False
    return context.autocommit_block(), True


def same_tenant_fk(
    table: str, column: str, target: str, ondelete: str = "RESTRICT"
) -> sa.ForeignKeyConstraint:
    """(tenantId, column) -> target (tenantId, id): the referenced row must be the same tenant's."""
    return sa.ForeignKeyConstraint(
        ["tenantId", column],
        [f"{target}.tenantId", f"{target}.id"],
        name=f"{table}_tenantId_{column}_fkey",
        ondelete=ondelete,
    )


def user_fk(table: str, column: str, ondelete: str = "SET NULL") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], ["users.id"], name=f"{table}_{column}_fkey", ondelete=ondelete)


def enum_checks(table: str, columns: list[sa.Column]) -> list[sa.CheckConstraint]:
    """On engines without enum types, a CHECK constraint per enum column: `<table>_<EnumType>_check`."""
    if is_postgresql():
        return []
    return [
        sa.CheckConstraint(
            sa.column(column.name).in_(column.type.enums), name=op.f(f"{table}_{column.type.name}_check")
        )
        for column in columns
        if isinstance(column.type, postgresql.ENUM)
    ]


def create_tenant_table(table: str, *items: sa.Column | sa.Constraint) -> None:
    """A tenant-scoped table: id, tenantId, the given columns, authorship and timestamps.

    Adds the primary key, UNIQUE (tenantId, id) (target of the same-tenant foreign keys), the
    references to the tenant and to the authoring users, and the enum CHECK constraints.
    """
    columns = [item for item in items if isinstance(item, sa.Column)]
    constraints = [item for item in items if not isinstance(item, sa.Column)]
    op.create_table(
        table,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenantId", sa.Uuid(), nullable=False),
        *columns,
        sa.Column("createdBy", sa.Uuid(), nullable=True),
        sa.Column("updatedBy", sa.Uuid(), nullable=True),
        sa.Column("createdAt", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updatedAt", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"{table}_pkey"),
        sa.UniqueConstraint("tenantId", "id", name=f"{table}_tenantId_id_key"),
        sa.ForeignKeyConstraint(
            ["tenantId"], ["tenants.id"], name=f"{table}_tenantId_fkey", ondelete="RESTRICT"
        ),
        user_fk(table, "createdBy"),
        user_fk(table, "updatedBy"),
        *constraints,
        *enum_checks(table, columns),
    )
