"""Step 23: the name search's trigram index per tenant as GiST instead of GIN, holding what ranks a
page (issue 12, part 3, measured in bench/candidates.py at 1,000,000 candidates over 100 tenants).

GIN keeps one posting list per key: the index of 0022 intersected the tenant's list (10,000 rows) with
each trigram's list across every tenant (tens of thousands of rows each), 600 index pages and 7.5 ms for
one misspelt surname, before any row was read. GiST is a tree that keeps a tenant's names together under
its first column ("tenantId", through the btree_gist extension): the same search descends into the
tenant's part only, 40 pages and 0.5 ms. The signature length 32 bytes (pg_trgm's default 12) was the
best of 12, 32, 64 and 128 by a small margin.

The index also holds ("searchName", "mergedIntoId", id) (INCLUDE): a search ranks every match (476 for
a misspelt surname in a tenant of 10,000) from the index alone, an index-only scan, and reads the whole
row of only the page's 51 (candidates/service.py, `_ranked_read`). The whole query, as the app role:
11-15 ms with GIN, 3-4 ms with GiST, 2 ms with the included columns. Writes cost a little more (a
100,000-row import 33.5 s to 36.4 s, COPY 5.2 s to 5.9 s).

`%>` keeps its LEAKPROOF mark of 0022 (row-level security lets an index serve only LEAKPROOF
conditions). The index takes the name a plain index on its columns has
("candidates_tenantId_searchName_idx"), which it is on SQLite: there the plain index of 0022 is only
renamed (built anew, the old one dropped).

PostgreSQL builds the new index CONCURRENTLY (no write lock) and only then drops the old one
(CONCURRENTLY too), so the search is never without an index. A rerun changes nothing (IF [NOT] EXISTS).
A failed concurrent build leaves an INVALID index, which IF NOT EXISTS would accept: drop it (DROP
INDEX CONCURRENTLY "<its name>") before retrying.

The downgrade builds the GIN index again, then drops the GiST one and btree_gist (RESTRICT: while
anything else uses it, the downgrade fails there and changes nothing more): indexes only, no data.

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

from mobility.ops.migration_ops import execute, is_postgresql, outside_the_transaction

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "candidates"
GIN = "candidates_tenantId_searchName_trgm_idx"
GIST = "candidates_tenantId_searchName_idx"
DEFINITIONS = {
    GIN: 'USING gin ("tenantId", "searchName" gin_trgm_ops)',
    GIST: 'USING gist ("tenantId", "searchName" gist_trgm_ops(siglen=32)) INCLUDE ("searchName", "mergedIntoId", id)',
}


def _swap(build: str, drop: str) -> None:
    if not is_postgresql():
        op.create_index(build, TABLE, ["tenantId", "searchName"], if_not_exists=True)
        op.drop_index(drop, table_name=TABLE, if_exists=True)
        return
    block, outside = outside_the_transaction()
    concurrently = " CONCURRENTLY" if outside else ""
    with block:
        op.execute(f'CREATE INDEX{concurrently} IF NOT EXISTS "{build}" ON {TABLE} {DEFINITIONS[build]}')
        op.execute(f'DROP INDEX{concurrently} IF EXISTS "{drop}"')


def upgrade() -> None:
    if is_postgresql():
        execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    _swap(GIST, GIN)


def downgrade() -> None:
    _swap(GIN, GIST)
    if is_postgresql():
        execute("DROP EXTENSION IF EXISTS btree_gist")
