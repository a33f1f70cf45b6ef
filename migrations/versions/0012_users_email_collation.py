"""Step 12 (PostgreSQL only): logins find their user by index under row-level security.

0010 indexed `lower(email)`. The API, connected as `mobility_app`, reads `users` through the
row-level-security policies of 0009, and PostgreSQL evaluates the policies' conditions before any
condition that calls a function not marked LEAKPROOF, such as lower(): the index of 0010 could not be
used, and every login read the whole table (1 s per attempt at a million users, bench/auth.py: a lever
for denial of service on a public endpoint). An equality under a collation has no such function.

- the collation `mobility_email_ci`: ICU, case-insensitive (`und-u-ks-level2`), nondeterministic;
- the index `users_email_ci_idx` on `(email COLLATE mobility_email_ci)`, built CONCURRENTLY (no write
  lock on users), as 0003 and 0010 do. The index lives in the database only, like the policies of
  0009: migrations/env.py leaves it out of the model comparison (SQLite has no such collation).

Logins compare `mobility.users.models.email_key(User.email)`, which is this expression on PostgreSQL
and `lower(email)` on SQLite. Needs PostgreSQL built with ICU (Debian's and the official images are).
The downgrade drops the index, then the collation.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

from mobility.ops.migration_ops import is_postgresql, outside_the_transaction

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLLATION = "mobility_email_ci"
INDEX = "users_email_ci_idx"


def upgrade() -> None:
    if not is_postgresql():
        return
    op.execute(
        f"CREATE COLLATION IF NOT EXISTS {COLLATION} "
        "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)"
    )
    block, outside = outside_the_transaction()
    concurrently = " CONCURRENTLY" if outside else ""
    with block:
        op.execute(f"CREATE INDEX{concurrently} IF NOT EXISTS {INDEX} ON users ((email COLLATE {COLLATION}))")


def downgrade() -> None:
    if not is_postgresql():
        return
    block, outside = outside_the_transaction()
    concurrently = " CONCURRENTLY" if outside else ""
    with block:
        op.execute(f"DROP INDEX{concurrently} IF EXISTS {INDEX}")
    op.execute(f"DROP COLLATION IF EXISTS {COLLATION}")
