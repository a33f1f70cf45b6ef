"""Step 22: indexes for the candidates list's order and its name search (issue 12, part 3, measured in
bench/candidates.py at 1,000,000 candidates over 100 tenants).

The list pages newest first by ("createdAt", id), keyset (core/pagination.py), most often filtered by
status. No index held that order: every page, first or deep, read all of the tenant's candidates of
that status and sorted them (19 ms a page, 4,000 rows read for 51). The name search's trigram index
held every tenant's names: a misspelt surname matched across all tenants and the planner read the
tenant's 10,000 rows instead (51 ms). Now:

- candidates ("tenantId", status, "createdAt", id) replaces ("tenantId", status) (0007): the same
  prefix serves every lookup the old one did, and the filtered list reads its 51 rows in order
  (0.6 ms);
- candidates ("tenantId", "createdAt", id): the list without a status filter, and the export;
- PostgreSQL: the trigram index on ("tenantId", "searchName") (GIN; the tenant through the btree_gin
  extension, `CREATE EXTENSION IF NOT EXISTS btree_gin`) replaces the one on "searchName" alone: the
  search reads only the tenant's matching rows (4 ms). SQLite: a plain index on ("tenantId",
  "searchName") replaces the one on "searchName".

Under row-level security (the API's app role), PostgreSQL uses an index for a condition only when the
condition's function is LEAKPROOF (it could otherwise run on rows the policy hides, before the policy's
check). pg_trgm's `%>` (word_similarity_commutator_op) is not marked so, and the search read the
tenant's rows whatever the index: the revision marks it LEAKPROOF, which it is (a boolean computed from
its two texts, no error or side effect depending on them). Only a superuser may: run by another role,
the revision says so (NOTICE) and goes on, and the search then works as before, only slower.

PostgreSQL builds the new indexes CONCURRENTLY (no write lock on a large table) and only then drops the
old ones (CONCURRENTLY too), so no lookup is ever without its index. A rerun changes nothing (IF [NOT]
EXISTS). If a concurrent build fails it leaves an INVALID index, which IF NOT EXISTS would accept: drop
it (DROP INDEX CONCURRENTLY "<its name>") before retrying.

The downgrade makes `%>` NOT LEAKPROOF again (a superuser), builds the old indexes again, drops the new
ones and then btree_gin (RESTRICT: while
anything else uses it, the downgrade fails there and changes nothing more): indexes only, no data.

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

from mobility.ops.migration_ops import execute, is_postgresql, outside_the_transaction

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "candidates"
OLD_STATUS = "candidates_tenantId_status_idx"
OLD_SEARCH = "candidates_searchName_trgm_idx"
NEW_STATUS = "candidates_tenantId_status_createdAt_id_idx"
NEW_CREATED = "candidates_tenantId_createdAt_id_idx"
NEW_SEARCH = "candidates_tenantId_searchName_trgm_idx"
# name: (PostgreSQL's definition after `ON candidates`, SQLite's columns)
INDEXES = {
    OLD_STATUS: ('("tenantId", status)', ["tenantId", "status"]),
    OLD_SEARCH: ('USING gin ("searchName" gin_trgm_ops)', ["searchName"]),
    NEW_STATUS: ('("tenantId", status, "createdAt", id)', ["tenantId", "status", "createdAt", "id"]),
    NEW_CREATED: ('("tenantId", "createdAt", id)', ["tenantId", "createdAt", "id"]),
    NEW_SEARCH: ('USING gin ("tenantId", "searchName" gin_trgm_ops)', ["tenantId", "searchName"]),
}


def _swap(build: Sequence[str], drop: Sequence[str]) -> None:
    """Build the indexes `build`, then drop `drop`: concurrently, outside the transaction, on
    PostgreSQL."""
    if is_postgresql():
        block, outside = outside_the_transaction()
        concurrently = " CONCURRENTLY" if outside else ""
        with block:
            for name in build:
                op.execute(f'CREATE INDEX{concurrently} IF NOT EXISTS "{name}" ON {TABLE} {INDEXES[name][0]}')
            for name in drop:
                op.execute(f'DROP INDEX{concurrently} IF EXISTS "{name}"')
        return
    for name in build:
        op.create_index(name, TABLE, INDEXES[name][1], if_not_exists=True)
    for name in drop:
        op.drop_index(name, table_name=TABLE, if_exists=True)


def _word_similarity_leakproof(leakproof: bool) -> None:
    mark = "LEAKPROOF" if leakproof else "NOT LEAKPROOF"
    notice = f"not a superuser: run ALTER FUNCTION word_similarity_commutator_op(text, text) {mark} as one"
    execute(
        f"""
        DO $leakproof$
        BEGIN
            IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
                ALTER FUNCTION word_similarity_commutator_op(text, text) {mark};
            ELSE
                RAISE NOTICE '{notice}';
            END IF;
        END
        $leakproof$
        """
    )


def upgrade() -> None:
    if is_postgresql():
        execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
        _word_similarity_leakproof(True)
    _swap([NEW_STATUS, NEW_CREATED, NEW_SEARCH], [OLD_STATUS, OLD_SEARCH])


def downgrade() -> None:
    if is_postgresql():
        _word_similarity_leakproof(False)
    _swap([OLD_STATUS, OLD_SEARCH], [NEW_STATUS, NEW_CREATED, NEW_SEARCH])
    if is_postgresql():
        execute("DROP EXTENSION IF EXISTS btree_gin")
